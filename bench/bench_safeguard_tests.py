"""How long phase 01's safeguard tests take: the pytest process `checks.run_tests` starts.

Runs the notebook's own test list (`-m safeguard` on the backfill, checkpoint and cleanup test
files) through `checks.run_tests`, the command line and environment phase 01 uses, and prints
each run's wall time and CPU time (user + system of the process and its threads, which a loaded
machine disturbs less). With `--trees`, each run goes through the trees in turn (A B A B, the
same minutes): a checkout of another commit is tested with its own code and this venv, each
run by that checkout's copy of this script (its checks.py's command line, its fork server).
With `--forked`, each run goes launched then forked: forked is how a run's phase 01 starts it,
from the run's fork server with phase 00's and 01's imports loaded (forkserver.py); its CPU is
the server's child's, not counted here. Target on a quiet 2-core machine: <= 3 s wall.

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_safeguard_tests.py [--runs 4]
        [--trees /path/to/a/checkout/of/the/before/commit .] [--forked]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runbook_lib import paths  # noqa: E402
from runbook_lib.run import checks, engine  # noqa: E402
from runbook_lib.run.forkserver import SOCKET_ENV  # noqa: E402

# Phase 01's list (notebooks/01_code_deployment.ipynb, `safeguard_tests`).
SAFEGUARD_TESTS = [
    "-m",
    "safeguard",
    "tests/test_backfill.py",
    "tests/test_checkpoint.py",
    "tests/test_cleanup.py",
]


def one_run(tree: Path) -> tuple[float, float, dict]:
    """Return the wall seconds, the CPU seconds and the result of one pytest process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = checks.run_tests(SAFEGUARD_TESTS, tree)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


def fork_server():
    """Start a fork server with what a run's has loaded when phase 01 asks it for pytest."""
    from runbook_lib.run import runner

    ctx = runner.new_run("local", None, None, Path("/tmp/unused"), None, None, None)[0]
    first = [nb for nb in runner.phase_notebooks(paths.NOTEBOOKS_DIR) if nb.stem < "02"]
    imports = [m for nb in first for m in runner._kernel_imports(ctx, nb)]
    return engine.fork_server(engine.kernel_name(), {}, ROOT, [imports])


FIGURES = re.compile(r"^\S+ (launched|forked): wall ([0-9.]+) s, CPU (?:([0-9.]+) s|not seen)")


def tree_runs(tree: Path, forked: bool) -> list[tuple[str, float, float, str]]:
    """Run one round in `tree` by its own copy of this script; return (mode, wall, CPU, line)."""
    command = [sys.executable, str(tree / "bench" / Path(__file__).name), "--runs", "1"]
    done = subprocess.run(command + (["--forked"] if forked else []), cwd=tree,
                          capture_output=True, text=True, check=True)  # fmt: skip
    found = [(m, line) for line in done.stdout.splitlines() if (m := FIGURES.match(line))]
    return [(m[1], float(m[2]), float(m[3] or 0), line) for m, line in found]


def main() -> None:
    """Print each run's figures and the medians per tree."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--trees", nargs="+", type=Path, default=[ROOT])
    ap.add_argument("--forked", action="store_true", help="also forked, as in a run")
    args = ap.parse_args()
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set: every run compiles from source")
    modes = ["launched", "forked"] if args.forked else ["launched"]
    figures = {(t, m): [] for t in args.trees for m in modes}
    if [t.resolve() for t in args.trees] != [ROOT]:
        for _ in range(args.runs):
            for tree in args.trees:
                for mode, wall, cpu, line in tree_runs(tree.resolve(), args.forked):
                    figures[tree, mode].append((wall, cpu))
                    print(line.replace(str(tree.resolve()), str(tree), 1), flush=True)
        return _medians(figures)
    server = fork_server() if args.forked else None
    for _ in range(args.runs):
        for tree, mode in figures:
            if mode == "forked":
                os.environ[SOCKET_ENV] = server.socket_path
            wall, cpu, result = one_run(tree.resolve())
            os.environ.pop(SOCKET_ENV, None)
            assert result.get("started", "launched") == mode, result
            figures[tree, mode].append((wall, cpu))
            load = os.getloadavg()[0]
            used = f"{cpu:.2f} s" if mode == "launched" else "not seen (the server's child)"
            print(f"{tree} {mode}: wall {wall:.2f} s, CPU {used}, load average {load:.1f}: "
                  f"{result['summary']}", flush=True)  # fmt: skip
    if server:
        server.stop()
    _medians(figures)


def _medians(figures: dict) -> None:
    for (tree, mode), runs in figures.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        used = f", median CPU {statistics.median(cpus):.2f} s" if mode == "launched" else ""
        print(f"{tree} {mode}: median wall {statistics.median(walls):.2f} s "
              f"({min(walls):.2f}-{max(walls):.2f}){used}")  # fmt: skip


if __name__ == "__main__":
    main()
