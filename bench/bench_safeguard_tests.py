"""How long phase 01's safeguard tests take: the pytest process `checks.run_tests` starts.

Runs the notebook's own test list (`-m safeguard` on the backfill, checkpoint and cleanup test
files) through `checks.run_tests`, the command line and environment phase 01 uses, and prints
each run's wall time and CPU time (user + system of the process and its threads, which a loaded
machine disturbs less). With `--trees`, each run goes through the trees in turn (A B A B, the
same minutes): a checkout of another commit is tested with its own code and this venv.
Target on a quiet 2-core machine: <= 3 s wall.

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_safeguard_tests.py [--runs 4]
        [--trees /path/to/a/checkout/of/the/before/commit .]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runbook_lib.run import checks  # noqa: E402

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


def main() -> None:
    """Print each run's figures and the medians per tree."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--trees", nargs="+", type=Path, default=[ROOT])
    args = ap.parse_args()
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set: every run compiles from source")
    figures: dict[Path, list[tuple[float, float]]] = {t: [] for t in args.trees}
    for _ in range(args.runs):
        for tree in args.trees:
            wall, cpu, result = one_run(tree.resolve())
            figures[tree].append((wall, cpu))
            load = os.getloadavg()[0]
            print(f"{tree}: wall {wall:.2f} s, CPU {cpu:.2f} s, load average {load:.1f}: "
                  f"{result['summary']}", flush=True)  # fmt: skip
    for tree, runs in figures.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{tree}: median wall {statistics.median(walls):.2f} s "
              f"({min(walls):.2f}-{max(walls):.2f}), median CPU {statistics.median(cpus):.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
