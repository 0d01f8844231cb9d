"""One chunk of a backfill: decide, build into staging, validate, publish the dates that passed.

Every step is one statement for all dates of the chunk (build, validation counts, MERGE,
staging delete, metadata load) plus one checkpoint write; only the logging is per date. Any
error fails the chunk's unpublished dates with its text (fail safe) instead of ending the run,
so the other chunks still run and every date gets its metadata row and checkpoint entry.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from runbook_lib.config import BackfillConfig
from runbook_lib.faults import crash_point
from runbook_lib.platform import coverage
from runbook_lib.platform.backfill_result import DateOutcome
from runbook_lib.platform.checkpoint import Checkpoint
from runbook_lib.platform.factors import build_staging
from runbook_lib.platform.schema import BACKFILL_METADATA, PCF, PCF_STAGING, Tables
from runbook_lib.statuses import PUBLISHED, DateStatus
from runbook_lib.warehouse.base import Warehouse

log = logging.getLogger("runbook.backfill")
_KEY = ("game_date", "player_lookup")


@dataclass
class ChunkContext:
    """What every chunk of one run shares.

    `counts` maps each game date to its PlayerCounts (PGS, UPCG), counted once for the whole
    run by the pre-flight query; the chunks decide from it instead of counting again.
    """

    wh: Warehouse
    tables: Tables
    config: BackfillConfig
    run_id: str
    force: bool = False
    dry_run: bool = False
    checkpoint: Checkpoint | None = None
    counts: dict[dt.date, coverage.PlayerCounts] = field(default_factory=dict)

    def write_metadata(self, outcomes: list[DateOutcome]) -> None:
        """Insert one backfill_processing_metadata row per outcome (DML, so it can share the
        publish's transaction; a load job cannot)."""
        for start in range(0, len(outcomes), _METADATA_BATCH):
            sql, params = metadata_insert(self.tables, outcomes[start : start + _METADATA_BATCH],
                                          self.run_id)  # fmt: skip
            self.wh.execute(sql, params)


# Rows per metadata INSERT: 9 parameters each, far below BigQuery's limit per query.
_METADATA_BATCH = 200
# Each metadata column and what a row's value is: a parameter named after the column, or SQL.
_METADATA_SQL = {"data_source": "'BACKFILL'", "last_created_at": "CURRENT_TIMESTAMP()",
                 "tracked_at": "CURRENT_TIMESTAMP()"}  # fmt: skip


def metadata_insert(tables: Tables, outcomes: list[DateOutcome], run_id: str) -> tuple[str, dict]:
    """Return the INSERT of one metadata row per outcome, every value a typed parameter."""
    types = {f.name: f.type for f in BACKFILL_METADATA.fields}
    rows, params = [], {}
    for i, o in enumerate(outcomes):
        values = {
            "analysis_date": o.game_date, "expected_players": o.expected,
            "actual_players": o.actual, "coverage_pct": round(o.coverage_pct, 2),
            "status": str(o.status), "run_id": run_id, "context_source": o.decision,
            "upcg_players": o.upcg_players, "error": o.error,
        }  # fmt: skip
        cells = []
        for column in BACKFILL_METADATA.columns:
            if column in _METADATA_SQL:
                cells.append(_METADATA_SQL[column])
                continue
            params[f"{column}_{i}"] = values[column]
            # CAST: a NULL travels as STRING (bigquery_backend.query_parameters).
            cells.append(f"CAST(@{column}_{i} AS {types[column]})")
        rows.append(f"({', '.join(cells)})")
    sql = (
        f"INSERT INTO {tables.backfill_metadata.sql} ({', '.join(BACKFILL_METADATA.columns)})\n"
        f"VALUES {', '.join(rows)}"
    )
    return sql, params


def merge_sql(tables) -> str:
    """Return the MERGE of the run's staged rows of some dates into PCF."""
    cols = PCF.columns
    updates = ", ".join(f"{c} = S.{c}" for c in cols if c not in _KEY)
    return (
        f"MERGE {tables.pcf.sql} AS T\n"
        f"USING (SELECT {', '.join(cols)} FROM {tables.id(PCF_STAGING).sql}\n"
        f"       WHERE run_id = @run_id AND game_date IN UNNEST(@dates)) AS S\n"
        f"ON T.game_date = S.game_date AND T.player_lookup = S.player_lookup\n"
        f"WHEN MATCHED THEN UPDATE SET {updates}\n"
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) "
        f"VALUES ({', '.join('S.' + c for c in cols)})"
    )


def process_chunk(ctx: ChunkContext, dates: list[dt.date]) -> list[DateOutcome]:
    """Backfill one chunk of game dates and return their outcomes."""
    counts = {d: ctx.counts[d] for d in dates}
    threshold = ctx.config.fallback_threshold
    decisions = {d: coverage.decide(d, c.upcg, c.pgs, threshold) for d, c in counts.items()}
    if ctx.dry_run:
        return [_would_build(d, counts[d], decisions[d]) for d in dates]
    # One connection for the chunk's statements (per thread: workers each hold their own).
    with ctx.wh.session():
        try:
            outcomes = _build_and_validate(ctx, dates, counts, decisions)
            published = publish(ctx, outcomes)
        finally:
            _drop_staging(ctx, dates)
        return _finish(ctx, outcomes, metadata_written=published is not None)


def _build_and_validate(ctx, dates, counts, decisions) -> list[DateOutcome]:
    upcg = [d for d in dates if decisions[d] == coverage.UPCG]
    fallback = [d for d in dates if decisions[d] == coverage.FALLBACK]
    try:
        built = build_staging(ctx.wh, ctx.tables, ctx.run_id, upcg, fallback)
        log.info("Built %d rows for %d dates into staging (run %s)", built, len(dates), ctx.run_id)
    except Exception as e:  # noqa: BLE001
        # The build is one statement for the whole chunk, so its error is no verdict on any
        # one date: say so, or an operator reads 750 identical "failures" as 750 bad dates.
        error = (
            f"build failed for the whole chunk of {len(dates)} dates ({dates[0]} .. "
            f"{dates[-1]}), not for this date alone; a rerun retries them: {e}"
        )
        log.error(
            "❌ Staging build of %d dates (%s .. %s) failed: %s", len(dates), dates[0], dates[-1], e
        )
        return [_failed(d, counts[d].pgs, counts[d].upcg, decisions[d], error) for d in dates]
    return validate_staged(ctx, dates, counts, decisions)


def validate_staged(ctx: ChunkContext, dates, before: dict, decisions: dict) -> list[DateOutcome]:
    """Compare staged and PGS player sets per date (one query); return verdicts.

    Args:
        before: date -> PlayerCounts (PGS, UPCG) as counted before the build.
        decisions: date -> UPCG or PGS_FALLBACK.
    """
    tables, cfg = ctx.tables, ctx.config
    try:
        staged = coverage.staged_coverage(
            ctx.wh, tables.pgs, tables.id(PCF_STAGING), ctx.run_id, dates
        )
        counts = {r.game_date: (int(r.expected), int(r.actual)) for r in staged.itertuples()}
        verdicts = {
            d: coverage.judge(
                d,
                *counts[d],
                fail_below=cfg.fail_below_pct,
                warn_below=cfg.warn_below_pct,
                force=ctx.force,
            )
            for d in dates
        }
    except Exception as e:  # noqa: BLE001 - fail safe: no verdict means no publish
        counts = {d: (before[d].pgs, 0) for d in dates}
        verdicts = {d: coverage.validation_error(d, e) for d in dates}
    return [_outcome(d, counts[d], before[d].upcg, decisions[d], verdicts[d]) for d in dates]


def publish(ctx: ChunkContext, outcomes: list[DateOutcome]) -> int | None:
    """MERGE the staged rows of the dates that passed into PCF and write every date's metadata
    row, in one transaction: a date's PCF rows and its metadata row land together or not at
    all. Return the rows merged, or None when the transaction failed: then nothing of it
    landed, and its dates are FAILED."""
    passed = [o.game_date for o in outcomes if o.status != DateStatus.FAILED]
    merged = 0
    try:
        with ctx.wh.transaction():
            if passed:
                merged = ctx.wh.execute(
                    merge_sql(ctx.tables), {"run_id": ctx.run_id, "dates": passed}
                )
            crash_point("backfill.after_merge")
            ctx.write_metadata(outcomes)
    except Exception as e:  # noqa: BLE001 - one transaction: nothing was published
        for o in outcomes:
            if o.game_date in passed:
                o.status, o.error = DateStatus.FAILED, f"publish to PCF failed: {e}"
        return None
    if passed:
        log.info("Published %d rows of %d dates to %s", merged, len(passed), ctx.tables.pcf.short)
    return merged


def _outcome(day, counts, upcg_players, decision, verdict) -> DateOutcome:
    expected, actual = counts
    pct = actual / expected * 100 if expected else 0.0
    return DateOutcome(
        day, expected, actual, pct, decision, verdict.status, verdict.error, upcg_players
    )


def _failed(day, expected, upcg_players, decision, error) -> DateOutcome:
    return DateOutcome(day, expected, 0, 0.0, decision, DateStatus.FAILED, error, upcg_players)


def _would_build(day, counts: coverage.PlayerCounts, decision) -> DateOutcome:
    pgs, upcg = counts.pgs, counts.upcg
    players = pgs if decision == coverage.FALLBACK else upcg
    source = "the PGS fallback" if decision == coverage.FALLBACK else "UPCG"
    log.info(
        "Would build %d players for %s from %s and validate against %d PGS players",
        players,
        day,
        source,
        pgs,
    )
    pct = players / pgs * 100 if pgs else 0.0
    return DateOutcome(day, pgs, players, pct, decision, DateStatus.WOULD_BUILD, None, upcg)


def _drop_staging(ctx: ChunkContext, dates: list[dt.date]) -> None:
    table = ctx.tables.id(PCF_STAGING)
    try:
        ctx.wh.execute(
            f"DELETE FROM {table.sql} WHERE run_id = @run_id AND game_date IN UNNEST(@dates)",
            {"run_id": ctx.run_id, "dates": dates},
        )
    except Exception as e:  # noqa: BLE001 - leftovers carry the run id and never reach PCF
        log.warning("Could not delete staging rows of run %s: %s", ctx.run_id, e)


def _finish(
    ctx: ChunkContext, outcomes: list[DateOutcome], metadata_written: bool
) -> list[DateOutcome]:
    """Write the metadata the publish could not (its dates FAILED) and the checkpoint for the
    chunk, then log each date's line."""
    if not metadata_written:
        try:
            ctx.write_metadata(outcomes)
        except Exception as e:  # noqa: BLE001 - a date without its metadata row is not done
            for o in outcomes:
                o.status, o.error = DateStatus.FAILED, o.error or f"metadata write failed: {e}"
    ctx.checkpoint.record(
        successes={o.game_date: o.actual for o in outcomes if o.status in PUBLISHED},
        failures={o.game_date: o.error for o in outcomes if o.status == DateStatus.FAILED},
        skips={o.game_date: o.error for o in outcomes if o.status == DateStatus.SKIPPED},
    )
    for o in outcomes:
        if o.status == DateStatus.FAILED:
            log.error("✗ %s: %s", o.game_date, o.error)
        elif o.status == DateStatus.SKIPPED:
            log.info("⏭  %s: %s", o.game_date, o.error)
        else:
            log.info("✓ %s: %d players", o.game_date, o.actual)
    return outcomes
