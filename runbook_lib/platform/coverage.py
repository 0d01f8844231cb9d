"""Coverage of the backfill: per-date player counts, the pre-flight, the context decision and the
validation verdict, logged in the words of the original (fact sheet 2.3-2.5) so operators
recognise them.

Counts are computed set-based, one query for many dates; only the logging is per date.
Every count is a distinct-player count: the original's decision counted UPCG *rows* while its
pre-flight counted distinct players (a ⚠ in the fact sheet), so duplicates could disagree.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from runbook_lib.errors import PreflightFailedError
from runbook_lib.statuses import DateStatus
from runbook_lib.warehouse.base import Warehouse
from runbook_lib.warehouse.ids import TableId

log = logging.getLogger("runbook.backfill")

UPCG, FALLBACK = "UPCG", "PGS_FALLBACK"


def distinct_players(
    wh: Warehouse,
    sources: dict[str, tuple[TableId, str]],
    dates: list[dt.date],
    params: dict | None = None,
) -> pd.DataFrame:
    """Return per date the distinct players of each source, in one query.

    Args:
        sources: output column -> (table, extra SQL predicate on that table, or "TRUE").
        dates: the dates to count; each appears in the result, with 0 where a table has none.
    """
    ctes, cols, joins = [], [], []
    for i, (column, (table, where)) in enumerate(sources.items()):
        ctes.append(
            f"s{i} AS (SELECT game_date, COUNT(DISTINCT player_lookup) AS n FROM {table.sql} "
            f"WHERE game_date IN UNNEST(@dates) AND ({where}) GROUP BY game_date)"
        )
        cols.append(f"COALESCE(s{i}.n, 0) AS {column}")
        joins.append(f"LEFT JOIN s{i} ON s{i}.game_date = d")
    sql = (
        f"WITH {', '.join(ctes)}\nSELECT d AS game_date, {', '.join(cols)}\n"
        f"FROM UNNEST(@dates) AS d {' '.join(joins)}\nORDER BY game_date"
    )
    df = wh.query(sql, {**(params or {}), "dates": sorted(dates)})
    df["game_date"] = [pd.Timestamp(d).date() for d in df["game_date"]]
    return df


def staged_coverage(
    wh: Warehouse, pgs: TableId, staging: TableId, run_id: str, dates: list[dt.date]
) -> pd.DataFrame:
    """Return per date the PGS players (expected) and those of them the run staged (actual).

    The comparison is of player sets, in one query: a staged player who is not a PGS player of
    that date (a UPCG row for someone who did not play) adds nothing, so coverage never
    exceeds 100% and cannot hide a missing player behind an extra one.
    """
    sql = f"""
        WITH expected AS (
          SELECT DISTINCT game_date, player_lookup FROM {pgs.sql}
          WHERE game_date IN UNNEST(@dates)
        ),
        staged AS (
          SELECT DISTINCT game_date, player_lookup FROM {staging.sql}
          WHERE game_date IN UNNEST(@dates) AND run_id = @run_id
        ),
        per_date AS (
          SELECT e.game_date, COUNT(*) AS expected, COUNT(s.player_lookup) AS actual
          FROM expected AS e
          LEFT JOIN staged AS s
            ON s.game_date = e.game_date AND s.player_lookup = e.player_lookup
          GROUP BY e.game_date
        )
        SELECT d AS game_date, COALESCE(p.expected, 0) AS expected,
          COALESCE(p.actual, 0) AS actual
        FROM UNNEST(@dates) AS d LEFT JOIN per_date AS p ON p.game_date = d
        ORDER BY game_date"""
    df = wh.query(sql, {"dates": sorted(dates), "run_id": run_id})
    df["game_date"] = [pd.Timestamp(d).date() for d in df["game_date"]]
    return df


def _pct(part: int, whole: int) -> float:
    return part / whole * 100 if whole else 0.0


# -- pre-flight (fact sheet 2.3) ---------------------------------------------------------------
class PlayerCounts(NamedTuple):
    """A game date's distinct players in PGS and in UPCG, as the pre-flight counted them."""

    pgs: int
    upcg: int


def preflight(
    counts: pd.DataFrame, threshold: float, *, allow_partial: bool, stop: bool = True
) -> list[dict]:
    """Log the pre-flight coverage check and return the partial-UPCG dates.

    Raises PreflightFailedError when a date has partial UPCG (0 < UPCG < threshold x PGS),
    unless `allow_partial` (the fallback handles those dates) or `stop` is False (dry run).
    """
    log.info("=" * 70)
    log.info("PRE-FLIGHT COVERAGE CHECK")
    log.info("=" * 70)
    log.info("Checking %d dates for potential data issues...", len(counts))
    issues = []
    for row in counts.itertuples():
        p, u = int(row.pgs_players), int(row.upcg_players)
        if p == 0:
            log.warning("⚠️  %s: scheduled game day with no box scores (0 PGS players)", row.game_date)
        elif 0 < u < threshold * p:
            log.warning(
                "⚠️  %s: UPCG has partial data (%d/%d = %.1f%%, missing %d players)",
                row.game_date,
                u,
                p,
                _pct(u, p),
                p - u,
            )
            issues.append(
                {
                    "game_date": row.game_date,
                    "pgs_players": p,
                    "upcg_players": u,
                    "coverage_pct": round(_pct(u, p), 1),
                    "missing": p - u,
                }
            )
        else:
            log.info("✅ %s: Data looks good (PGS: %d, UPCG: %d)", row.game_date, p, u)
    if not issues:
        log.info("✅ Pre-flight coverage check complete - No issues found")
        return issues
    _log_issues(issues, handled=allow_partial)
    if allow_partial:
        log.warning(
            "Continuing (--allow-partial-context): the PGS fallback will build the "
            "context of those %d date(s); coverage validation stays on",
            len(issues),
        )
    elif stop:
        log.error("❌ Pre-flight check failed. Aborting backfill.")
        log.error("   Nothing was written. Clean the stale rows or pass --allow-partial-context.")
        raise PreflightFailedError(issues)
    else:
        log.error("❌ Pre-flight check failed: a real run would abort here (dry run goes on)")
    return issues


def _log_issues(issues: list[dict], *, handled: bool) -> None:
    """Log the partial-UPCG dates: as errors with the ways out, or as handled by the fallback."""
    say = log.warning if handled else log.error
    say("=" * 70)
    say("⚠️  PRE-FLIGHT CHECK FOUND ISSUES")
    say("=" * 70)
    for i in issues:
        say(
            "   %s: Expected (PGS): %d, Actual (UPCG): %d, Coverage: %.1f%%, Missing: %d",
            i["game_date"],
            i["pgs_players"],
            i["upcg_players"],
            i["coverage_pct"],
            i["missing"],
        )
    if handled:
        say(
            "   These %d date(s) are handled by the PGS fallback (--allow-partial-context)",
            len(issues),
        )
        return
    say("RECOMMENDED ACTIONS:")
    say("   1. Purge stale rows: `runbook cleanup --env <env> --dry-run`, then without it")
    say("   2. Let the fallback handle them: rerun with --allow-partial-context")
    say("   3. Last resort: --force skips pre-flight AND coverage validation (partial dates publish)")


# -- context decision (fact sheet 2.4) ---------------------------------------------------------
def decide(day: dt.date, upcg: int, pgs: int, threshold: float) -> str:
    """Log the defensive block and decision for one date; return UPCG or PGS_FALLBACK."""
    pct = _pct(upcg, pgs)
    # The original logged this after reading UPCG; the count is the one the pre-flight made.
    log.info("Extracted %d player context records from upcoming_player_game_context", upcg)
    log.info("📊 Data source check for %s:", day)
    log.info("   - upcoming_player_game_context (UPCG): %d players", upcg)
    log.info("   - player_game_summary (PGS): %d players", pgs)
    log.info("   - Coverage: %.1f%%", pct)
    if upcg == 0:
        log.warning("No upcoming_player_game_context for %s", day)
        log.warning("   → Falling back to synthetic context from player_game_summary")
        log.warning("   → Will generate context for %d players", pgs)
        reason = "UPCG is empty"
    elif upcg < threshold * pgs:
        log.error("❌ INCOMPLETE DATA DETECTED for %s:", day)
        log.error(
            "   - upcoming_player_game_context has only %d/%d players (%.1f%%)", upcg, pgs, pct
        )
        log.error("   - This indicates stale/partial data in UPCG table")
        log.error("   - Missing %d players", pgs - upcg)
        log.error("   → RECOMMENDATION: Clear stale UPCG data before running backfill")
        reason = f"UPCG has incomplete data ({upcg}/{pgs} = {pct:.1f}%)"
    else:
        log.info("✅ Using upcoming_player_game_context: %d players", upcg)
        log.info("   - Expected from PGS: %d", pgs)
        log.info("   - Data source: UPCG table")
        return UPCG
    log.warning("🔄 TRIGGERING FALLBACK for %s:", day)
    log.warning("   - Reason: %s", reason)
    log.warning("   - Action: Generating synthetic context from player_game_summary")
    log.warning("   - Expected coverage: %d players", pgs)
    return FALLBACK


# -- validation verdict (fact sheet 2.5) -------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """Whether a date may be published, its metadata status and, when it may not, why."""

    passed: bool
    status: DateStatus
    error: str | None = None


def judge(
    day: dt.date, expected: int, actual: int, *, fail_below: float, warn_below: float, force: bool
) -> Verdict:
    """Log the coverage validation of one date and return its verdict."""
    pct = _pct(actual, expected)
    if expected == 0:
        # Only scheduled game dates outside the bootstrap window reach validation, so no box
        # scores means the PGS load failed upstream: the original called it an off-day, skipped
        # it and exited 0, the same silence as the incident (issue 11).
        log.error("❌ NO BOX SCORES for %s: games are scheduled but PGS has 0 players", day)
        return Verdict(False, DateStatus.FAILED, no_box_scores_error(day))
    if force:
        log.warning("⚠️  Coverage validation SKIPPED for %s (--force flag used)", day)
        status = DateStatus.COMPLETE if pct >= warn_below else DateStatus.INCOMPLETE
        return Verdict(True, status)
    if pct < fail_below:
        log.error("❌ COVERAGE VALIDATION FAILED for %s:", day)
        log.error("   Processed: %d/%d players (%.1f%%)", actual, expected, pct)
        log.error("   This indicates partial backfill - likely stale UPCG data")
        return Verdict(
            False, DateStatus.FAILED, f"Coverage validation failed: {actual}/{expected} players ({pct:.1f}%)"
        )
    status = DateStatus.COMPLETE
    if pct < warn_below:
        log.warning("⚠️  Low coverage for %s: %d/%d players (%.1f%%)", day, actual, expected, pct)
        status = DateStatus.INCOMPLETE
    log.info("✅ Coverage validation passed: %d/%d players (%.1f%%)", actual, expected, pct)
    return Verdict(True, status)


def no_box_scores_error(day: dt.date) -> str:
    """Return the error of a scheduled game day with no PGS rows, with the way to repair it."""
    return (
        f"scheduled game day with no box scores: 0 PGS players for {day} (to fix this, load "
        f"player_game_summary for {day} upstream, then rerun the backfill of {day})"
    )


def validation_error(day: dt.date, error: Exception) -> Verdict:
    """Log a validation that could not run and fail the date (fail safe)."""
    log.error("❌ Coverage validation error for %s: %s", day, error)
    return Verdict(False, DateStatus.FAILED, f"Coverage validation error: {error}")
