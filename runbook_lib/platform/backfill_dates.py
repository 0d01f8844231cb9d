"""Which dates a backfill processes: input validation, schedule game dates, bootstrap skip.

A range and a `--dates` list go through the same checks and the same path afterwards, so a
date list keeps every safeguard (the original's `--dates` bypassed them all: fact sheet 2.1).
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd

from runbook_lib.config import BackfillConfig
from runbook_lib.errors import DateRangeError
from runbook_lib.platform.schema import Tables
from runbook_lib.warehouse.base import Warehouse

log = logging.getLogger("runbook.backfill")

GAME_TYPES = ["Regular Season", "Playoffs"]


def as_date(value, what: str) -> dt.date:
    """Return `value` as a date, or raise DateRangeError naming the bad value."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise DateRangeError(
            f"{what} {value!r} is not a date", "write dates as YYYY-MM-DD, for example 2023-02-23"
        ) from None


def date_list(dates) -> list:
    """Return `--dates` as a list of entries: a comma-separated string is split, and an empty
    entry (`2023-02-23,,2023-02-24`, a trailing comma) is refused, not skipped."""
    if not isinstance(dates, str):
        return list(dates)
    entries = [d.strip() for d in dates.split(",")]
    empty = [i + 1 for i, d in enumerate(entries) if not d]
    if empty and dates.strip():
        raise DateRangeError(
            f"the date list {dates!r} has an empty entry (entry {empty[0]} of {len(entries)})",
            "remove the extra comma, e.g. --dates 2023-02-23,2023-02-24",
        )
    return [d for d in entries if d]


def requested_dates(
    config: BackfillConfig, today: dt.date, start, end, dates=None
) -> tuple[dt.date, dt.date, list]:
    """Validate a range or a date list; return (first, last, every requested calendar date).

    Raises DateRangeError for a malformed, reversed, future or too wide request; nothing has
    touched the warehouse yet.
    """
    limit = config.max_range_days
    if dates is not None:
        if start is not None or end is not None:
            raise DateRangeError(
                "--dates was given together with --start-date/--end-date",
                "give either a range (--start-date and --end-date) or a list (--dates), not both",
            )
        days = sorted({as_date(d, "date") for d in date_list(dates)})
        if not days:
            raise DateRangeError("the date list is empty", "name at least one date: --dates D1,D2")
        first, last = days[0], days[-1]
    else:
        if start is None or end is None:
            raise DateRangeError(
                "a backfill needs --start-date and --end-date, or --dates",
                "give both ends of the range, or a list of dates",
            )
        first, last = as_date(start, "start date"), as_date(end, "end date")
        if first > last:
            raise DateRangeError(
                f"start date {first} is after end date {last}",
                "swap them: --start-date is the earlier date",
            )
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    if last > today:
        raise DateRangeError(
            f"end date {last} is in the future (today is {today})",
            f"end the backfill on or before {today}",
        )
    if (last - first).days + 1 > limit:
        raise DateRangeError(
            f"the request spans {(last - first).days + 1} days, more than "
            f"backfill.max_range_days = {limit}",
            "split it into smaller ranges, or raise backfill.max_range_days in the params file",
        )
    return first, last, days


def game_dates(wh: Warehouse, tables: Tables, days: list[dt.date]) -> pd.DataFrame:
    """Return the scheduled game dates among `days` with their season's first game date."""
    sql = f"""
        WITH starts AS (
          SELECT season_year, MIN(game_date) AS season_start
          FROM {tables.schedule.sql}
          WHERE game_type IN UNNEST(@game_types)
          GROUP BY season_year
        )
        SELECT DISTINCT s.game_date, s.season_year, st.season_start
        FROM {tables.schedule.sql} AS s
        JOIN starts AS st USING (season_year)
        WHERE s.game_date BETWEEN @first AND @last
          AND s.game_date IN UNNEST(@days)
          AND s.game_type IN UNNEST(@game_types)
        ORDER BY s.game_date"""
    df = wh.query(sql, {"first": days[0], "last": days[-1], "days": days, "game_types": GAME_TYPES})
    for col in ("game_date", "season_start"):
        df[col] = [pd.Timestamp(d).date() for d in df[col]]
    return df


def split_bootstrap(schedule: pd.DataFrame, bootstrap_days: int) -> tuple[list, dict]:
    """Return (dates to process, {bootstrap date: reason}) from `game_dates` output."""
    todo, skipped = [], {}
    for row in schedule.itertuples():
        day_of_season = (row.game_date - row.season_start).days
        if 0 <= day_of_season < bootstrap_days:
            skipped[row.game_date] = (
                f"bootstrap: day {day_of_season + 1} of season {row.season_year} "
                f"(first {bootstrap_days} days have no Phase 4 history)"
            )
        else:
            todo.append(row.game_date)
    return todo, skipped
