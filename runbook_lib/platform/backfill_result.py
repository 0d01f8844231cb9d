"""What a backfill returns: one outcome per date, the pre-flight issues and the log it wrote."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import pandas as pd

from runbook_lib.statuses import PUBLISHED, DateStatus

_NUMERIC = {
    "expected": "int64",
    "actual": "int64",
    "coverage_pct": "float64",
    "upcg_players": "int64",
}


@dataclass
class DateOutcome:
    """One date of a backfill.

    `decision` is UPCG, PGS_FALLBACK or BOOTSTRAP; `status` is COMPLETE (published),
    INCOMPLETE (published, in the 90-95% warning band), FAILED (not published), SKIPPED or,
    in a dry run, WOULD_BUILD. `error` holds why a date failed or was skipped.
    """

    game_date: dt.date
    expected: int
    actual: int
    coverage_pct: float
    decision: str
    status: DateStatus
    error: str | None = None
    upcg_players: int = 0


@dataclass
class BackfillResult:
    """Every date's outcome, in date order, plus the captured log lines."""

    start: dt.date
    end: dt.date
    run_id: str
    dry_run: bool = False
    outcomes: list[DateOutcome] = field(default_factory=list)
    preflight_issues: list[dict] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    checkpoint_path: str | None = None
    requested: int = 0  # calendar dates asked for
    without_games: int = 0  # requested dates with no scheduled game
    # Game dates this run left alone because the checkpoint already holds their outcome.
    already_successful: list[dt.date] = field(default_factory=list)
    already_skipped: list[dt.date] = field(default_factory=list)

    @property
    def published(self) -> list[DateOutcome]:
        """Return the dates merged into PCF."""
        return [o for o in self.outcomes if o.status in PUBLISHED]

    @property
    def failed(self) -> list[DateOutcome]:
        """Return the dates that failed (never published)."""
        return [o for o in self.outcomes if o.status == DateStatus.FAILED]

    @property
    def skipped(self) -> list[DateOutcome]:
        """Return the dates skipped (bootstrap, no expected players)."""
        return [o for o in self.outcomes if o.status == DateStatus.SKIPPED]

    @property
    def nothing_to_do(self) -> bool:
        """Return whether the run found no date left to process (all done, or no games)."""
        return not self.outcomes

    def carried_over(self) -> str:
        """Return one line saying what the run requested and what the checkpoint already held."""
        plural = "" if self.requested == 1 else "s"
        return (
            f"{self.requested} requested date{plural}: {len(self.already_successful)} already "
            f"successful, {len(self.already_skipped)} already skipped (per the checkpoint), "
            f"{self.without_games} without games"
        )

    def outcome(self, day) -> DateOutcome:
        """Return the outcome of one date (a date or YYYY-MM-DD)."""
        day = dt.date.fromisoformat(day) if isinstance(day, str) else day
        return next(o for o in self.outcomes if o.game_date == day)

    def to_frame(self) -> pd.DataFrame:
        """Return the outcomes as a DataFrame, one row per date."""
        frame = pd.DataFrame(
            [asdict(o) for o in self.outcomes], columns=list(DateOutcome.__dataclass_fields__)
        )
        # Typed even when empty (a rerun with nothing left), so callers can round and compare.
        return frame.astype(_NUMERIC)
