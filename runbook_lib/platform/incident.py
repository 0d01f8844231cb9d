"""Replay of the 2026-01-06 incident: plant a stale UPCG row the way the integration guide does.

The guide copies one 2023-02-24 UPCG row and moves it to 2023-02-23 (its UPDATE moved every
2023-02-24 row, and after the Phase 2 cleanup there is no 2023-02-24 row to copy). Here the
row is built from the date's own PGS row of one player, so exactly one row is planted.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from runbook_lib.platform.schema import Tables
from runbook_lib.warehouse.base import Warehouse

INCIDENT_PLAYER = "reggiejackson"


def plant_stale_context(wh: Warehouse, tables: Tables, game_date: dt.date, rows: int = 1) -> int:
    """Insert `rows` UPCG rows for `game_date` built from PGS; return how many were planted."""
    sql = f"""
        INSERT INTO {tables.upcg.sql}
          (player_lookup, universal_player_id, game_id, game_date, team_abbr,
           opponent_team_abbr, created_at, processed_at)
        SELECT player_lookup, universal_player_id, game_id, game_date, team_abbr,
               opponent_team_abbr, CURRENT_TIMESTAMP(), CURRENT_TIMESTAMP()
        FROM {tables.pgs.sql}
        WHERE game_date = @game_date
        ORDER BY IF(player_lookup = @player, 0, 1), player_lookup
        LIMIT @rows"""
    return wh.execute(sql, {"game_date": game_date, "player": INCIDENT_PLAYER, "rows": int(rows)})


def remove_planted(wh: Warehouse, tables: Tables, game_date: dt.date, expected_rows: int) -> int:
    """Delete the planted UPCG rows of `game_date`, exactly `expected_rows` of them."""
    return wh.delete_exact(tables.upcg, "game_date = @game_date", {"game_date": game_date}, expected_rows)


def context_counts(wh: Warehouse, tables: Tables, dates: list[dt.date]) -> pd.DataFrame:
    """Return UPCG rows and distinct PGS players per date: what the pre-flight will see."""
    sql = f"""
        SELECT d AS game_date,
          (SELECT COUNT(DISTINCT player_lookup) FROM {tables.pgs.sql} p WHERE p.game_date = d)
            AS pgs_players,
          (SELECT COUNT(*) FROM {tables.upcg.sql} u WHERE u.game_date = d) AS upcg_rows
        FROM UNNEST(@dates) AS d
        ORDER BY game_date"""
    return wh.query(sql, {"dates": list(dates)})


def plant_incident(wh: Warehouse, tables: Tables, rows_by_date: dict) -> dict[dt.date, int]:
    """Plant the incident's stale UPCG rows (date -> rows); return what was planted per date."""
    return {
        _day(day): plant_stale_context(wh, tables, _day(day), int(rows))
        for day, rows in sorted(rows_by_date.items())
    }


def remove_incident(wh: Warehouse, tables: Tables, planted: dict) -> dict[dt.date, int]:
    """Delete exactly the rows `plant_incident` planted, date by date."""
    return {day: remove_planted(wh, tables, day, rows) for day, rows in planted.items()}


def _day(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
