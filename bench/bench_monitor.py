"""Bench: `runbook monitor`'s four checks over a 30-day window, on DuckDB and on bqemulator.

The seeded league after the nightly backfill of the last 30 days (as phase 05 runs it); then
`monitor.check` (the window's evidence and the problems, two queries) timed end to end. Prints
the median of N runs in ms per backend; records nothing itself (copy the figures into
bench/README.md under "## Monitor").

    .venv/bin/python bench/bench_monitor.py [--runs 20] [--skip-bigquery]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import uuid

from runbook_lib.platform import monitor
from runbook_lib.platform.league import seed_league
from runbook_lib.platform.schema import (
    BACKFILL_METADATA,
    PCF,
    PGS,
    SCHEDULE,
    UPCG,
    UTCG,
    Tables,
)
from runbook_lib.run import backfill_steps, monitor_phase
from runbook_lib.run.params import load_params
from runbook_lib.warehouse import connect

TODAY = "2025-04-10"
TABLES = (SCHEDULE, PGS, PCF, BACKFILL_METADATA, UPCG, UTCG)


def time_check(wh, tables, settings, today, runs: int) -> tuple[float, monitor.MonitorResult]:
    """Return the median wall time in ms of `monitor.check` over `runs` runs, after a warm-up."""
    result = monitor.check(wh, tables, settings, today, "bench")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        monitor.check(wh, tables, settings, today, "bench")
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def copy_to_emulator(local, tables: Tables, endpoint: str):
    """Load the tables the monitor reads into a fresh emulator project with load jobs."""
    from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse
    from runbook_lib.warehouse.emulator import client_for

    project = f"bench-{uuid.uuid4().hex[:12]}"
    bq = BigQueryWarehouse(project, run_id="bench", client=client_for(endpoint, project))
    bq_tables = Tables(project, tables.datasets)
    for schema in TABLES:
        bq.ensure_table(bq_tables.id(schema), schema)
        frame = local.query(f"SELECT * FROM {tables.id(schema).sql}")
        if len(frame):
            bq.load_dataframe(bq_tables.id(schema), frame)
    return bq, bq_tables


def main() -> None:
    """Seed, backfill the window, time the monitor on each backend, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--skip-bigquery", action="store_true")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the backfill's and the monitor's own log lines
    with tempfile.TemporaryDirectory() as tmp:
        params = load_params(
            "local",
            {"warehouse_dir": tmp, "today": TODAY, "backfill.checkpoint_dir": f"{tmp}/checkpoints"},
        )
        local, tables, today = connect(params), params.tables, params.effective_today()
        seed_league(local, tables, today)
        backfill_steps.nightly_backfill(local, params, today, 30)
        settings = monitor_phase.settings(params)
        with local.session():
            ms, result = time_check(local, tables, settings, today, args.runs)
        print(
            f"monitor over {settings.window_days} days up to {result.day}, median of {args.runs} runs"
        )
        print(f"  duckdb:              {ms:7.1f} ms  ({result.headline()}; target <= 200 ms)")
        if not args.skip_bigquery:
            from runbook_lib.warehouse.emulator import running_emulator

            with running_emulator() as endpoint:
                bq, bq_tables = copy_to_emulator(local, tables, endpoint)
                ms, bq_result = time_check(bq, bq_tables, settings, today, args.runs)
                same = [p.key for p in bq_result.problems] == [p.key for p in result.problems]
                print(
                    f"  bigquery (emulator): {ms:7.1f} ms  ({bq_result.headline()}; "
                    f"same problems as duckdb: {same})"
                )


if __name__ == "__main__":
    main()
