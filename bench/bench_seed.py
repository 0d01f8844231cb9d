"""Bench: seed the synthetic league's four seasons into a temporary warehouse.

Prints the wall time of each run (generation, load and the SQL-derived tables) and the peak RSS
of the process against the targets (<= 5 s, <= 1 GB). No assertion: the figures go into
bench/README.md with the command that made them.

    .venv/bin/python bench/bench_seed.py [--runs 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

from runbook_lib.platform.league import league_frames, seed_league
from runbook_lib.run.params import load_params
from runbook_lib.warehouse import connect

TARGET_SECONDS = 5.0
TARGET_RSS_MB = 1024


def main() -> None:
    """Seed --runs times and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        params = load_params("local", {"warehouse_dir": folder})
        today = params.effective_today()
        wh = connect(params)
        start = time.perf_counter()
        league_frames(today)
        generate = time.perf_counter() - start
        seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            summary = seed_league(wh, params.tables, today)
            seconds.append(time.perf_counter() - start)
        size_mb = wh.path.stat().st_size / 2**20
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"seasons {summary.seasons}, PGS {summary.pgs_rows:,} rows, PSZA {summary.psza_rows:,}, "
          f"UPCG {summary.upcg_rows:,}, UTCG {summary.utcg_rows:,}; file {size_mb:.0f} MB")  # fmt: skip
    print(f"generate frames (numpy/pandas only): {generate:.2f} s")
    print(f"seed wall time over {args.runs} runs: median {statistics.median(seconds):.2f} s, "
          f"min {min(seconds):.2f} s, max {max(seconds):.2f} s (target <= {TARGET_SECONDS:.0f} s)")  # fmt: skip
    print(f"peak RSS of the process: {rss_mb:.0f} MB (target <= {TARGET_RSS_MB} MB)")


if __name__ == "__main__":
    main()
