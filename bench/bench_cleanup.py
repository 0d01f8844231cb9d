"""Bench: the stale-data cleanup of the seeded league, verified backups included.

Seeds the league (today 2025-04-10) into a temporary DuckDB warehouse, then times plan and
apply (cap and drift checks, a verified backup of each upcoming table, the exact deletes, the
verification, the audit row) over N fresh copies of the seeded file. Prints the median wall
time and the peak RSS of the process; records nothing itself (copy the figures into
bench/README.md under "## Cleanup").

    .venv/bin/python bench/bench_cleanup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from runbook_lib.platform import cleanup
from runbook_lib.platform.league import seed_league
from runbook_lib.run.params import load_params
from runbook_lib.warehouse import connect

TODAY = "2025-04-10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-cleanup-"))
    try:
        seeded = load_params("local", {"warehouse_dir": str(folder / "seed"), "today": TODAY})
        seed_league(connect(seeded), seeded.tables, seeded.effective_today())
        seed_file = seeded.warehouse_path / f"{seeded.project}.duckdb"
        times, plan_times, result = [], [], None
        for i in range(args.runs):
            params = load_params("local", {"warehouse_dir": str(folder / f"r{i}"), "today": TODAY})
            params.warehouse_path.mkdir(parents=True)
            shutil.copy(seed_file, params.warehouse_path / seed_file.name)
            wh = connect(params)
            start = time.perf_counter()
            with wh.session():
                plan = cleanup.plan_cleanup(
                    wh,
                    params.tables,
                    params.effective_today(),
                    params.cleanup.ttl_days,
                    params.cleanup.max_delete_fraction,
                    env=params.env,
                )
                planned = time.perf_counter()
                result = cleanup.apply_cleanup(
                    wh, params.tables, plan, confirm=plan.tokens, run_id=f"bench{i}"
                )
            times.append(time.perf_counter() - start)
            plan_times.append(planned - start)
        for t in result.tables:
            print(
                f"{t.table.short}: deleted {t.deleted:,} of {t.backup_rows:,} rows "
                f"(backup verified: {t.verified})"
            )
        print(f"plan (preview, per-date counts): median {statistics.median(plan_times):.3f} s")
        print(
            f"plan + apply with verified backups: median {statistics.median(times):.3f} s "
            f"over {args.runs} runs (target <= 2 s)"
        )
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the process: {peak_mb:.0f} MB (target <= 1024 MB)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
