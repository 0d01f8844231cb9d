"""How long phase 03's function takes to come up: functions-framework start to a first answer.

Builds the function bundle once (as phase 03 does on local, with the DuckDB backend), then per
run starts it under functions-framework on 127.0.0.1 and times (a) until its port accepts a
connection (what LocalFunctionServer.start waits for; functions-framework has imported the
bundle by then), (b) until the health target answers (500 here: no config in its environment)
and (c) how long LocalFunctionServer.stop takes after that answer (phases 03 and 05 stop their
server on their critical path). Target on 2 cores: <= 2 s to the first answer.

With --forked, each run starts it twice, alternately: launched from a new interpreter, and
forked from a fork server that has loaded what a run's server has by phase 03 (every phase
kernel's imports, then functions-framework's: forkserver.MODULE_RUN_IMPORTS), as a phase's
kernel forks it.

    .venv/bin/python bench/bench_function.py [--runs 5] [--forked]
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runbook_lib.platform.cloud_function import local  # noqa: E402
from runbook_lib.platform.cloud_function.bundle import build_bundle  # noqa: E402


def _bundle(folder: Path) -> Path:
    if "backend" in inspect.signature(build_bundle).parameters:
        return build_bundle(folder, backend="duckdb")
    return build_bundle(folder)


def _fork_server(folder: Path):
    """Start a fork server loaded as a run's is by phase 03; return it once it forks."""
    from runbook_lib.run import engine, runner
    from runbook_lib.run.forkserver import MODULE_RUN_IMPORTS
    from runbook_lib.run.params import load_params
    from runbook_lib.run.phases import phase_notebooks

    ctx = SimpleNamespace(params=load_params("local"))
    imports = dict.fromkeys(m for nb in phase_notebooks() for m in runner._kernel_imports(ctx, nb))
    forks = engine.fork_server(engine.kernel_name(), {}, folder, [[*imports, *MODULE_RUN_IMPORTS]])
    one_start(_bundle(folder / "warm-up"), forks)  # waits for the preload
    return forks


def one_start(bundle: Path, forks=None) -> tuple[float, float, float]:
    """Return seconds to a listening port, to a first answer from the health target, and to stop."""
    t0 = time.perf_counter()
    server = local.LocalFunctionServer(bundle, "health", "http", {}).launch(forks)
    server.wait_listening()
    if forks is not None and server.started != "forked":
        raise RuntimeError(f"the server was not forked: {server.started}")
    try:
        listening = time.perf_counter() - t0
        try:
            with urllib.request.urlopen(server.url, timeout=30) as answer:  # noqa: S310 - loopback
                answer.read()
        except urllib.error.HTTPError:
            pass  # an answer all the same: with no config in its environment health says 500
        answered = time.perf_counter() - t0
    finally:
        t1 = time.perf_counter()
        server.stop()
    return listening, answered, time.perf_counter() - t1


def main() -> None:
    """Print each run's figures and the medians."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--forked", action="store_true", help="also forked, alternately")
    args = ap.parse_args()
    ways = {"launched": None}
    with tempfile.TemporaryDirectory(prefix="bench_function_") as tmp:
        t0 = time.perf_counter()
        bundle = _bundle(Path(tmp) / "bundle")
        files = sum(1 for p in bundle.rglob("*") if p.is_file())
        print(f"bundle: {files} files, built in {time.perf_counter() - t0:.2f} s")
        if args.forked:
            ways["forked"] = _fork_server(Path(tmp))
        try:
            runs = [
                (way, one_start(bundle, forks))
                for _ in range(args.runs)
                for way, forks in ways.items()
            ]
        finally:
            if args.forked:
                ways["forked"].stop()
    for i, (way, (up, answered, stopped)) in enumerate(runs, 1):
        print(
            f"run {i} {way}: listening {up:.2f} s, first answer {answered:.2f} s, stop {stopped:.2f} s"
        )
    for way in ways:
        mine = [r for w, r in runs if w == way]
        med = [statistics.median(r[k] for r in mine) for k in range(3)]
        print(
            f"median {way}: listening {med[0]:.2f} s, first answer {med[1]:.2f} s  "
            f"(target <= 2 s), stop {med[2]:.2f} s"
        )


if __name__ == "__main__":
    main()
