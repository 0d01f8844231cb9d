"""What a cleanup would delete: one cutoff, a preview per upcoming table, the confirmation tokens.

The cutoff is computed ONCE per plan (today - ttl_days, a UTC date); rows dated on the cutoff are
kept, stale means `game_date < cutoff`. Each table is previewed in set-based queries, one of them
the digest of its stale rows' keys, and the frozen `CleanupPlan` carries one token per table with
stale rows, e.g. ``delete 1234 rows from nba_analytics.upcoming_player_game_context (plan
3f9a2c)`` (cleanup_confirm.py defines the tokens and the line).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import pandas as pd

from runbook_lib.errors import DeleteCountMismatchError
from runbook_lib.platform import cleanup_confirm
from runbook_lib.platform.schema import UPCOMING_TABLES, Tables
from runbook_lib.warehouse.base import RowsDigest, Warehouse, one_connection
from runbook_lib.warehouse.ids import TableId

log = logging.getLogger(__name__)

STALE = "game_date < @cutoff"
KEPT = "game_date >= @cutoff"


@dataclass(frozen=True)
class TablePreview:
    """What a plan found in one table: stale rows, their dates and the table's size."""

    table: TableId
    stale_rows: int
    stale_dates: int
    min_date: dt.date | None
    max_date: dt.date | None
    total_rows: int
    # The stale rows' key digest (computed in SQL) and the short id of env, table, cutoff and it.
    digest: RowsDigest | None = None
    plan_id: str = ""

    cap: float = 1.0

    @property
    def token(self) -> str:
        """Return the confirmation token that echoes this table, its stale rows and plan id.

        Over the cap, the token also names the share of the table and the cap.
        """
        over = (self.fraction, self.cap) if self.over_cap(self.cap) else None
        return cleanup_confirm.token(self.table.short, self.stale_rows, self.plan_id, over)

    @property
    def fraction(self) -> float:
        """Return the share of the table the plan would delete."""
        return self.stale_rows / self.total_rows if self.total_rows else 0.0

    def over_cap(self, cap: float) -> bool:
        """Return whether deleting the stale rows would exceed `cap`, a share of the table."""
        return bool(self.stale_rows) and self.fraction > cap


@dataclass(frozen=True)
class CleanupPlan:
    """A previewed cleanup: the cutoff, one preview per table and the stale rows per date."""

    env: str
    today: dt.date
    ttl_days: int
    cutoff: dt.date
    max_delete_fraction: float
    previews: tuple[TablePreview, ...]
    # Columns table, game_date, rows: what a chart of the stale rows needs.
    per_date: pd.DataFrame = field(compare=False, repr=False)

    def preview(self, table: TableId | str) -> TablePreview:
        """Return the preview of a table, named by TableId, `dataset.table` or full id."""
        for p in self.previews:
            if table in (p.table, p.table.short, str(p.table)):
                return p
        raise KeyError(f"{table} is not part of this cleanup plan")

    def token(self, table: TableId | str) -> str:
        """Return the confirmation token of one table."""
        return self.preview(table).token

    @property
    def tokens(self) -> dict[str, str]:
        """Return `dataset.table` -> token for every table that has stale rows."""
        return {p.table.short: p.token for p in self.previews if p.stale_rows}

    @property
    def over_cap(self) -> tuple[TablePreview, ...]:
        """Return the previews of the tables whose delete would exceed max_delete_fraction."""
        return tuple(p for p in self.previews if p.over_cap(self.max_delete_fraction))

    @property
    def total_stale(self) -> int:
        """Return the stale rows of all tables together."""
        return sum(p.stale_rows for p in self.previews)

    def summary(self) -> pd.DataFrame:
        """Return the per-table preview as a DataFrame (one row per table)."""
        rows = [
            {
                "table": p.table.short,
                "stale_rows": p.stale_rows,
                "stale_dates": p.stale_dates,
                "min_date": p.min_date,
                "max_date": p.max_date,
                "total_rows": p.total_rows,
                "fraction": round(p.fraction, 4),
                "over_cap": p.over_cap(self.max_delete_fraction),
                "token": p.token if p.stale_rows else "",
            }
            for p in self.previews
        ]
        return pd.DataFrame(rows)


def upcoming_tables(tables: Tables) -> list[TableId]:
    """Return the TableIds of UPCG and UTCG."""
    return [tables.id(s) for s in UPCOMING_TABLES]


def ttl_days_problem(today: dt.date, ttl_days) -> str | None:
    """Return what is wrong with `ttl_days` as a TTL on `today`, or None when it gives a cutoff.

    The one rule for every way a TTL comes in (params, `--days`, the function's TTL_DAYS).
    """
    if not isinstance(ttl_days, int) or isinstance(ttl_days, bool) or ttl_days < 1:
        return (
            f"must be a whole number of days, 1 or more, got {ttl_days!r} "
            f"(0 or less would make today's and future rows stale)"
        )
    top = (today - dt.date.min).days
    if ttl_days > top:
        return (
            f"must be at most {top:,} (today {today} minus that many days is {dt.date.min}, "
            f"the earliest date), got {ttl_days:,}"
        )
    return None


def cutoff_for(today: dt.date, ttl_days: int) -> dt.date:
    """Return the first kept date: rows older than `today - ttl_days` are stale."""
    problem = ttl_days_problem(today, ttl_days)
    if problem:
        raise ValueError(f"ttl_days {problem}")
    return today - dt.timedelta(days=ttl_days)


@one_connection
def plan_cleanup(
    wh: Warehouse,
    tables: Tables,
    today: dt.date,
    ttl_days: int,
    max_delete_fraction: float,
    *,
    env: str,
) -> CleanupPlan:
    """Preview the stale rows of both upcoming tables against one cutoff computed here.

    `env` is bound into each table's plan id (with the project, the cutoff and the stale rows'
    digest), so a token previewed on another environment is refused here.
    """
    cutoff = cutoff_for(today, ttl_days)
    ids = upcoming_tables(tables)
    labels = {f"t{i}": t.short for i, t in enumerate(ids)}
    params = {"cutoff": cutoff, **labels}
    per_date_sql = "\nUNION ALL\n".join(
        f"SELECT @t{i} AS table_name, game_date, COUNT(*) AS n FROM {t.sql} "  # noqa: S608
        f"WHERE {STALE} GROUP BY game_date"
        for i, t in enumerate(ids)
    )
    totals_sql = "\nUNION ALL\n".join(
        f"SELECT @t{i} AS table_name, COUNT(*) AS n FROM {t.sql}"  # noqa: S608
        for i, t in enumerate(ids)
    )
    per_date = wh.query(per_date_sql, params).rename(columns={"table_name": "table", "n": "rows"})
    per_date = per_date.sort_values(["table", "game_date"]).reset_index(drop=True)
    totals = wh.query(totals_sql, labels).set_index("table_name")["n"]
    cap = float(max_delete_fraction)
    previews = tuple(
        _preview(t, per_date, int(totals[t.short]), _digest(wh, env, t, key, cutoff), cap)
        for t, key in zip(ids, (schema.key for schema in UPCOMING_TABLES), strict=True)
    )
    plan = CleanupPlan(env, today, ttl_days, cutoff, cap, previews, per_date)
    for p in previews:
        log.info(
            "%s: %s stale rows on %s dates (cutoff %s)",
            p.table.short,
            f"{p.stale_rows:,}",
            p.stale_dates,
            cutoff,
        )
    return plan


def _digest(wh: Warehouse, env: str, table: TableId, key, cutoff) -> tuple[RowsDigest, str]:
    digest = wh.rows_digest(table, key, STALE, {"cutoff": cutoff})
    return digest, cleanup_confirm.plan_id(env, table, cutoff, digest)


def _preview(
    table: TableId,
    per_date: pd.DataFrame,
    total: int,
    digested: tuple[RowsDigest, str],
    cap: float,
) -> TablePreview:
    rows = per_date[per_date["table"] == table.short]
    stale = int(rows["rows"].sum()) if len(rows) else 0
    digest, plan_id = digested
    if digest.rows != stale:  # a write landed between the two queries of this preview
        raise DeleteCountMismatchError(table.short, stale, digest.rows)
    if rows.empty:
        return TablePreview(table, 0, 0, None, None, total, digest, plan_id, cap)
    return TablePreview(
        table,
        stale,
        len(rows),
        rows["game_date"].min(),
        rows["game_date"].max(),
        total,
        digest,
        plan_id,
        cap,
    )
