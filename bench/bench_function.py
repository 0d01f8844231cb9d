"""How long phase 03's function takes to come up: functions-framework start to a first answer.

Builds the function bundle once (as phase 03 does on local, with the DuckDB backend), then per
run starts it under functions-framework on 127.0.0.1 and times (a) until its port accepts a
connection (what LocalFunctionServer.start waits for; functions-framework has imported the
bundle by then), (b) until the health target answers (500 here: no config in its environment)
and (c) how long LocalFunctionServer.stop takes after that answer (phases 03 and 05 stop their
server on their critical path). Target on 2 cores: <= 2 s to the first answer.

    .venv/bin/python bench/bench_function.py [--runs 5]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runbook_lib.platform.cloud_function import local  # noqa: E402
from runbook_lib.platform.cloud_function.bundle import build_bundle  # noqa: E402


def _bundle(folder: Path) -> Path:
    if "backend" in inspect.signature(build_bundle).parameters:
        return build_bundle(folder, backend="duckdb")
    return build_bundle(folder)


def one_start(bundle: Path) -> tuple[float, float, float]:
    """Return seconds to a listening port, to a first answer from the health target, and to stop."""
    t0 = time.perf_counter()
    server = local.LocalFunctionServer(bundle, "health", "http", {}).start()
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
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_function_") as tmp:
        t0 = time.perf_counter()
        bundle = _bundle(Path(tmp) / "bundle")
        files = sum(1 for p in bundle.rglob("*") if p.is_file())
        print(f"bundle: {files} files, built in {time.perf_counter() - t0:.2f} s")
        runs = [one_start(bundle) for _ in range(args.runs)]
    for i, (up, answered, stopped) in enumerate(runs, 1):
        print(f"run {i}: listening {up:.2f} s, first answer {answered:.2f} s, stop {stopped:.2f} s")
    med = [statistics.median(r[k] for r in runs) for k in range(3)]
    print(
        f"median: listening {med[0]:.2f} s, first answer {med[1]:.2f} s  (target <= 2 s), "
        f"stop {med[2]:.2f} s"
    )


if __name__ == "__main__":
    main()
