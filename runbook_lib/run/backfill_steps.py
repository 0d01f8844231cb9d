"""The backfills phases 04 and 05 run: the incident's pre-flight stop, the expected log lines, the nightly run.

Each function here would otherwise be logic in a notebook cell (a try/except, a branch on the
environment); keeping it here keeps the notebooks thin and the behaviour tested.
"""

from __future__ import annotations

import datetime as dt

from runbook_lib.errors import PreflightFailedError
from runbook_lib.run.params import Params


def run_backfill(wh, params: Params, start=None, end=None, **options):
    """Run the platform's backfill with one environment's sections (tables, backfill, today)."""
    from runbook_lib.platform import backfill

    today = params.effective_today()
    return backfill.run_backfill(wh, params.tables, params.backfill, today, start, end, **options)


def expect_preflight_stop(wh, params: Params, start: dt.date, end: dt.date, run_id: str | None = None):
    """Run the backfill on `start`..`end` and return the PreflightFailedError it must raise.

    Returns None when the pre-flight did not stop the run (which the phase then reports as a
    failed check; the backfill will have run its validation).
    """
    try:
        run_backfill(wh, params, start, end, run_id=run_id, resume=False)
    except PreflightFailedError as e:
        return e
    return None


# The lines the seed runbook's Phase 4 tells operators to look for, in the fact sheet's words.
EXPECTED_LOG_LINES = (
    "PRE-FLIGHT COVERAGE CHECK",
    "📊 Data source check for",
    "upcoming_player_game_context (UPCG):",
    "player_game_summary (PGS):",
    "No upcoming_player_game_context for",
    "🔄 TRIGGERING FALLBACK for",
    "UPCG is empty",
    "⚠️  PRE-FLIGHT CHECK FOUND ISSUES",
    "❌ Pre-flight check failed. Aborting backfill.",
    "❌ INCOMPLETE DATA DETECTED for",
    "UPCG has incomplete data",
    "✅ Coverage validation passed: 187/187 players (100.0%)",
    "✅ Coverage validation passed: 175/175 players (100.0%)",
)


def expected_lines(captured: list[str], expected: tuple[str, ...] = EXPECTED_LOG_LINES):
    """Return a table of each expected line (a substring) and whether it appeared."""
    import pandas as pd

    return pd.DataFrame(
        [{"line": e, "found": any(e in line for line in captured)} for e in expected],
        columns=["line", "found"],
    )


def nightly_backfill(wh, params: Params, today: dt.date, days: int, run_id: str | None = None):
    """Run the scheduled backfill over the last `days` days before `today`; None when days is 0.

    On `local` there is no nightly scheduler, so the monitoring phase runs the backfill the
    schedule would have run, with every safeguard on, to give the dashboard real rows.
    """
    if days <= 0:
        return None
    start, end = today - dt.timedelta(days=days), today - dt.timedelta(days=1)
    return run_backfill(wh, params, start, end, run_id=run_id, resume=False)


def nightly_outcomes(nightly):
    """Return what phase 05 shows of its nightly backfill: the outcome per date, or why none ran."""
    return nightly.to_frame() if nightly else "no nightly backfill run by this phase"
