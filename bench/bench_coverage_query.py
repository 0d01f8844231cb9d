"""Bench: the seed's coverage query over four seasons, on DuckDB and on BigQuery (bqemulator).

Per game date, distinct PGS players against distinct UPCG players, in one query. Prints the
median of N runs in ms per backend and the peak RSS of the process; records nothing itself
(copy the figures into bench/README.md under "## Coverage query").

    .venv/bin/python bench/bench_coverage_query.py [--runs 20] [--skip-bigquery]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
import uuid

from runbook_lib.platform.league import seed_league
from runbook_lib.platform.schema import PGS, UPCG, Tables
from runbook_lib.run.params import load_params
from runbook_lib.warehouse import connect
from runbook_lib.warehouse.base import Warehouse

TODAY = "2025-04-10"


def coverage_sql(tables: Tables) -> str:
    """Return the coverage query: per game date, distinct PGS vs distinct UPCG players."""
    return f"""
WITH pgs AS (
  SELECT game_date, COUNT(DISTINCT player_lookup) AS pgs_players
  FROM {tables.pgs.sql} WHERE game_date BETWEEN @start AND @end GROUP BY game_date
), upcg AS (
  SELECT game_date, COUNT(DISTINCT player_lookup) AS upcg_players
  FROM {tables.upcg.sql} WHERE game_date BETWEEN @start AND @end GROUP BY game_date
)
SELECT pgs.game_date, pgs.pgs_players, COALESCE(upcg.upcg_players, 0) AS upcg_players,
  ROUND(SAFE_DIVIDE(COALESCE(upcg.upcg_players, 0), pgs.pgs_players) * 100, 1) AS coverage_pct
FROM pgs LEFT JOIN upcg ON upcg.game_date = pgs.game_date
ORDER BY pgs.game_date"""


def time_query(wh: Warehouse, sql: str, params: dict, runs: int) -> tuple[float, int]:
    """Return the median wall time in ms over `runs` runs (after one warm-up) and the row count."""
    rows = len(wh.query(sql, params))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        wh.query(sql, params)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), rows


def copy_to_emulator(local: Warehouse, tables: Tables, endpoint: str) -> tuple[Warehouse, Tables]:
    """Load the seeded PGS and UPCG into a fresh emulator project with load jobs."""
    from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse
    from runbook_lib.warehouse.emulator import client_for

    project = f"bench-{uuid.uuid4().hex[:12]}"
    bq = BigQueryWarehouse(project, run_id="bench", client=client_for(endpoint, project))
    bq_tables = Tables(project, tables.datasets)
    for schema in (PGS, UPCG):
        bq.ensure_table(bq_tables.id(schema), schema)
        frame = local.query(f"SELECT * FROM {tables.id(schema).sql}")
        start = time.perf_counter()
        bq.load_dataframe(bq_tables.id(schema), frame)
        print(
            f"  loaded {len(frame):,} {schema.name} rows into the emulator "
            f"in {time.perf_counter() - start:.1f} s"
        )
    return bq, bq_tables


def _records(df) -> list[tuple]:
    """Return rows as plain tuples, so backend dtypes (Int64 vs int64) do not matter."""
    return [(str(d), int(p), int(u), float(c)) for d, p, u, c in df.itertuples(index=False)]


def main() -> None:
    """Seed, run the coverage query on each backend, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--skip-bigquery", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        params = load_params("local", {"warehouse_dir": tmp, "today": TODAY})
        local, tables = connect(params), params.tables
        seed_league(local, tables, params.effective_today())
        first, last = local.query(
            f"SELECT MIN(game_date) AS a, MAX(game_date) AS b FROM {tables.pgs.sql}"
        ).iloc[0]
        qp = {"start": first, "end": last}
        pgs_rows = local.row_count(tables.pgs)
        print(
            f"coverage query over {pgs_rows:,} PGS rows, {first} .. {last}, median of {args.runs} runs"
        )
        sql = coverage_sql(tables)
        with local.session():
            ms, dates = time_query(local, sql, qp, args.runs)
        print(f"  duckdb:             {ms:7.1f} ms  ({dates} game dates; target <= 100 ms)")
        if not args.skip_bigquery:
            from runbook_lib.warehouse.emulator_server import running_emulator

            with running_emulator() as endpoint:
                bq, bq_tables = copy_to_emulator(local, tables, endpoint)
                ms, bq_dates = time_query(bq, coverage_sql(bq_tables), qp, args.runs)
                same = _records(local.query(sql, qp)) == _records(
                    bq.query(coverage_sql(bq_tables), qp)
                )
                print(
                    f"  bigquery (emulator): {ms:7.1f} ms  ({bq_dates} game dates; "
                    f"same answer as duckdb: {same})"
                )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
