"""The PCF backfill with its safeguards: pre-flight, fallback, build, validate, then publish.

Count UPCG and PGS players of every date of the run in one query, which feeds both the
pre-flight and each date's decision. Then for each chunk of dates: log the defensive block and
decide UPCG or the PGS fallback per date, build every player of every date into the staging
table (one statement), validate coverage per date (one query), MERGE only the dates that
passed into PCF, drop the run's staging rows, write one metadata row per date (one load) and
update the checkpoint (one write). A date that fails validation never reaches PCF, and a run with a
failed date raises (the original exited 0: fact sheet 2.1, 2.5).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from concurrent.futures import ThreadPoolExecutor

from runbook_lib import paths
from runbook_lib.clock import new_run_id
from runbook_lib.config import BackfillConfig
from runbook_lib.errors import CoverageValidationError
from runbook_lib.log_capture import capture_logs
from runbook_lib.platform import backfill_dates, coverage
from runbook_lib.platform.backfill_chunk import ChunkContext, process_chunk
from runbook_lib.platform.backfill_result import BackfillResult, DateOutcome
from runbook_lib.platform.checkpoint import Checkpoint, checkpoint_path
from runbook_lib.platform.schema import Tables
from runbook_lib.statuses import DateStatus
from runbook_lib.warehouse.base import Warehouse

log = logging.getLogger("runbook.backfill")

# Dates per chunk at most. Every chunk costs the same statements (build, validation counts,
# MERGE, staging delete, metadata load) and a checkpoint write whatever its size, so fewer,
# larger chunks win on both backends: on DuckDB the four seeded seasons (598 game dates) take
# ~1 s in one chunk against ~2.9 s in 96-date chunks; on BigQuery each statement is a job with
# about a second of latency. A failing chunk fails only its own dates (resume retries them) and
# validation still judges each date alone. The cap (about 4.5 seasons of game dates) bounds the
# date-array parameters and the work of one statement.
MAX_CHUNK_DATES = 750


def open_checkpoint(
    config: BackfillConfig, first: dt.date, last: dt.date, dates=None
) -> Checkpoint:
    """Return the checkpoint of a range (or of a date list) in the config's checkpoint_dir."""
    folder = paths.resolve(config.checkpoint_dir)
    explicit = sorted(backfill_dates.as_date(d, "date") for d in dates) if dates else None
    return Checkpoint(checkpoint_path(folder, first, last, explicit), first, last)


def chunks(dates: list[dt.date], workers: int) -> list[list[dt.date]]:
    """Split dates into contiguous chunks: at least one per worker, at most MAX_CHUNK_DATES."""
    if not dates:
        return []
    size = max(1, min(MAX_CHUNK_DATES, math.ceil(len(dates) / max(1, workers))))
    return [dates[i : i + size] for i in range(0, len(dates), size)]


def run_backfill(
    wh: Warehouse,
    tables: Tables,
    config: BackfillConfig,
    today: dt.date,
    start=None,
    end=None,
    *,
    dates=None,
    force: bool = False,
    allow_partial_context: bool = False,
    dry_run: bool = False,
    resume: bool = True,
    workers: int | None = None,
    run_id: str | None = None,
) -> BackfillResult:
    """Backfill PCF for a date range or list with every safeguard on; return per-date outcomes.

    Raises DateRangeError (bad input; nothing changes), PreflightFailedError (partial UPCG
    without --allow-partial-context or --force; nothing changes) and CoverageValidationError
    (after publishing the dates that passed and recording every date).
    """
    if dates is not None:
        dates = backfill_dates.date_list(dates)
    first, last, days = backfill_dates.requested_dates(config, today, start, end, dates)
    result = BackfillResult(first, last, run_id or new_run_id("backfill"), dry_run=dry_run)
    with capture_logs(log.name, into=result.log_lines):
        _run(
            wh,
            tables,
            config,
            days,
            result,
            dates=dates,
            force=force,
            allow_partial=allow_partial_context,
            resume=resume,
            workers=workers or config.workers,
        )
    if result.failed and not dry_run:
        error = CoverageValidationError(
            {str(o.game_date): o.error or "failed" for o in result.failed}
        )
        error.result = result  # callers can still show every date's outcome
        raise error
    return result


def _run(wh, tables, config, days, result, *, dates, force, allow_partial, resume, workers) -> None:
    mode = "DRY RUN - nothing will be written" if result.dry_run else "writing"
    log.info("PCF backfill %s .. %s (run %s, %s)", result.start, result.end, result.run_id, mode)
    if force:
        log.warning("⚠️  FORCE MODE ENABLED - Coverage validation will be skipped!")
    # One connection for the run's own statements; on DuckDB it also keeps the database open
    # between chunks, so each chunk's connection is cheap (opening it cold costs ~10 ms).
    with wh.session():
        todo, bootstrap, checkpoint = _select_dates(
            wh, tables, config, days, result, dates, resume
        )
        counts = _count_and_preflight(wh, tables, config, todo, result, force, allow_partial)
        ctx = ChunkContext(
            wh,
            tables,
            config,
            result.run_id,
            force=force,
            dry_run=result.dry_run,
            checkpoint=None if result.dry_run else checkpoint,
            counts=counts,
        )
        _record_bootstrap(ctx, bootstrap, result)
        _run_chunks(ctx, chunks(todo, workers), workers, result)
    result.outcomes.sort(key=lambda o: o.game_date)
    _log_summary(result)


def _select_dates(
    wh, tables, config, days, result, dates, resume
) -> tuple[list, dict, Checkpoint]:
    """Return (game dates to process, new bootstrap skips, checkpoint)."""
    schedule = backfill_dates.game_dates(wh, tables, days)
    todo, bootstrap = backfill_dates.split_bootstrap(schedule, config.bootstrap_days)
    result.requested, result.without_games = len(days), len(days) - len(schedule)
    log.info(
        "%d requested dates: %d game dates, %d in a bootstrap window, %d without games",
        len(days),
        len(todo),
        len(bootstrap),
        result.without_games,
    )
    checkpoint = open_checkpoint(config, result.start, result.end, dates)
    result.checkpoint_path = str(checkpoint.path)
    pending, skipped_before = _apply_checkpoint(
        checkpoint, todo, resume=resume, dry_run=result.dry_run
    )
    pending = sorted(set(pending) | set(_unpublished(wh, tables, checkpoint, pending, todo)))
    left = set(pending)
    result.already_successful = [d for d in todo if d not in left]
    # A bootstrap skip depends on the schedule alone: recorded once, it stays true.
    result.already_skipped = [d for d in bootstrap if str(d) in skipped_before]
    bootstrap = {d: r for d, r in bootstrap.items() if str(d) not in skipped_before}
    return pending, bootstrap, checkpoint


def _unpublished(wh, tables, checkpoint: Checkpoint, pending: list, todo: list) -> list:
    """Return dates the checkpoint calls successful whose players are no longer all in PCF.

    A checkpoint is a file; the warehouse can be reseeded, restored or cleaned under it. Trust
    it only as far as PCF agrees (one query), so a resume never reports success for rows that
    are not there: the incident's silent exit 0 in another form.
    """
    done = [d for d in todo if d not in set(pending)]
    if not done:
        return []
    recorded = checkpoint.load()["successful_dates"]
    sql = (
        f"SELECT game_date, COUNT(DISTINCT player_lookup) AS n FROM {tables.pcf.sql} "
        f"WHERE game_date IN UNNEST(@dates) GROUP BY game_date"
    )
    have = {str(r.game_date): int(r.n) for r in wh.query(sql, {"dates": done}).itertuples()}
    redo = [d for d in done if have.get(str(d), 0) < int(recorded[str(d)]["players"])]
    for d in redo:
        log.warning(
            "Checkpoint says %s succeeded with %s players but PCF holds %d: processing it again",
            d, recorded[str(d)]["players"], have.get(str(d), 0),
        )
    return redo


def _count_and_preflight(
    wh, tables, config, todo, result, force, allow_partial
) -> dict[dt.date, coverage.PlayerCounts]:
    """Count PGS and UPCG players of every date in one query; run the pre-flight on them.

    The same counts drive each date's context decision later, so the range is counted once
    instead of once for the pre-flight and again per chunk. Validation still recounts PGS
    after the build, so a PGS that changed meanwhile cannot pass a date unseen.
    """
    if not todo:
        return {}
    counts = coverage.distinct_players(
        wh, {"pgs_players": (tables.pgs, "TRUE"), "upcg_players": (tables.upcg, "TRUE")}, todo
    )
    if force:
        log.warning("Pre-flight coverage check SKIPPED (--force flag used)")
    else:
        result.preflight_issues = coverage.preflight(
            counts,
            config.fallback_threshold,
            allow_partial=allow_partial,
            stop=not result.dry_run,
        )
    return {
        r.game_date: coverage.PlayerCounts(int(r.pgs_players), int(r.upcg_players))
        for r in counts.itertuples()
    }


def _run_chunks(ctx: ChunkContext, parts: list, workers: int, result: BackfillResult) -> None:
    if workers > 1 and len(parts) > 1:
        log.info(
            "🚀 PARALLEL BACKFILL MODE - %d CONCURRENT WORKERS, %d chunks", workers, len(parts)
        )
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill") as pool:
            for outcomes in pool.map(lambda part: process_chunk(ctx, part), parts):
                result.outcomes.extend(outcomes)
    else:
        for part in parts:
            result.outcomes.extend(process_chunk(ctx, part))


def _apply_checkpoint(checkpoint: Checkpoint, todo: list, *, resume: bool, dry_run: bool):
    """Return (dates not yet successful, {date: reason} already skipped) from the checkpoint.

    A fresh start deletes the checkpoint (unless dry run) and has nothing done or skipped.
    """
    if not resume:
        if not dry_run:
            checkpoint.reset()
        log.info("Checkpoint %s: starting fresh (--no-resume)", checkpoint.path)
        return todo, {}
    state = checkpoint.load()
    pending = checkpoint.pending(todo)
    retried = [d for d in pending if str(d) in state["failed_dates"]]
    if len(pending) < len(todo) or retried:
        log.info(
            "Resuming from checkpoint %s: %d dates already successful, retrying %d failed dates",
            checkpoint.path,
            len(todo) - len(pending),
            len(retried),
        )
    return pending, state["skipped_dates"]


def _record_bootstrap(ctx: ChunkContext, bootstrap: dict, result: BackfillResult) -> None:
    outcomes = []
    for day, reason in sorted(bootstrap.items()):
        log.info("⏭  %s: skipped (%s)", day, reason)
        outcomes.append(DateOutcome(day, 0, 0, 0.0, "BOOTSTRAP", DateStatus.SKIPPED, reason))
    if outcomes and not ctx.dry_run:
        ctx.write_metadata(outcomes)
        ctx.checkpoint.record(skips={o.game_date: o.error for o in outcomes})
    result.outcomes.extend(outcomes)


def _log_summary(result: BackfillResult) -> None:
    log.info("=" * 70)
    log.info("PHASE 4 BACKFILL SUMMARY - PlayerCompositeFactorsProcessor:")
    if result.dry_run:
        log.info("   DRY RUN - nothing was written")
    log.info("   %s", result.carried_over())
    if result.nothing_to_do:
        log.info("   Nothing left to do: no date needs processing")
    log.info(
        "   Dates processed: %d, published: %d, skipped: %d, failed: %d, players published: %d",
        len(result.outcomes),
        len(result.published),
        len(result.skipped),
        len(result.failed),
        sum(o.actual for o in result.published),
    )
    for o in result.failed:
        log.error("   ✗ %s: %s", o.game_date, o.error)
    log.info("=" * 70)
