"""Replay of the 2026-01-06 incident: plant stale UPCG rows the way the integration guide does.

The guide copies one 2023-02-24 UPCG row and moves it to 2023-02-23 (its UPDATE moved every
2023-02-24 row, and after the Phase 2 cleanup there is no 2023-02-24 row to copy). Here each
planted row is built from the date's own PGS row of one player, and the replay tops a date up
to the incident's count: rows already there (a staging cleanup run dry) are counted, never
duplicated, and removal deletes exactly the (date, player) pairs this replay planted.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from runbook_lib.platform.schema import Tables
from runbook_lib.warehouse.base import Warehouse, one_connection

INCIDENT_PLAYER = "reggiejackson"


def _players_to_plant(wh: Warehouse, tables: Tables, game_date: dt.date, rows: int) -> list[str]:
    sql = f"""
        SELECT DISTINCT player_lookup FROM {tables.pgs.sql}
        WHERE game_date = @game_date AND player_lookup NOT IN (
          SELECT player_lookup FROM {tables.upcg.sql} WHERE game_date = @game_date)
        ORDER BY IF(player_lookup = @player, 0, 1), player_lookup
        LIMIT @rows"""
    params = {"game_date": game_date, "player": INCIDENT_PLAYER, "rows": int(rows)}
    return wh.query(sql, params)["player_lookup"].tolist()


def plant_stale_context(
    wh: Warehouse, tables: Tables, game_date: dt.date, rows: int = 1
) -> list[str]:
    """Insert up to `rows` UPCG rows for `game_date` built from PGS; return the players planted."""
    players = _players_to_plant(wh, tables, game_date, rows) if rows > 0 else []
    if not players:
        return []
    sql = f"""
        INSERT INTO {tables.upcg.sql}
          (player_lookup, universal_player_id, game_id, game_date, team_abbr,
           opponent_team_abbr, created_at, processed_at)
        SELECT player_lookup, ANY_VALUE(universal_player_id), ANY_VALUE(game_id), game_date,
               ANY_VALUE(team_abbr), ANY_VALUE(opponent_team_abbr), CURRENT_TIMESTAMP(),
               CURRENT_TIMESTAMP()
        FROM {tables.pgs.sql}
        WHERE game_date = @game_date AND player_lookup IN UNNEST(@players)
        GROUP BY player_lookup, game_date"""
    wh.execute(sql, {"game_date": game_date, "players": players})
    return players


@one_connection
def plant_incident(wh: Warehouse, tables: Tables, rows_by_date: dict) -> dict[dt.date, list[str]]:
    """Top each date's UPCG up to the incident's row count; return the players planted per date."""
    have = context_counts(wh, tables, [_day(d) for d in rows_by_date])
    existing = {str(r.game_date): int(r.upcg_rows) for r in have.itertuples()}
    return {
        _day(day): plant_stale_context(wh, tables, _day(day), int(rows) - existing[str(_day(day))])
        for day, rows in sorted(rows_by_date.items())
    }


@one_connection
def remove_incident(wh: Warehouse, tables: Tables, planted: dict) -> dict[dt.date, int]:
    """Delete exactly the (date, player) UPCG rows `plant_incident` planted."""
    return {day: remove_planted(wh, tables, day, players) for day, players in planted.items()}


def remove_planted(wh: Warehouse, tables: Tables, game_date: dt.date, players: list[str]) -> int:
    """Delete the UPCG rows of `game_date` for exactly these players (none when the list is empty)."""
    if not players:
        return 0
    where = "game_date = @game_date AND player_lookup IN UNNEST(@players)"
    params = {"game_date": game_date, "players": list(players)}
    return wh.delete_exact(tables.upcg, where, params, len(players))


@one_connection
def incident_state(wh: Warehouse, tables: Tables, rows_by_date: dict) -> tuple[bool, pd.DataFrame]:
    """Return whether each date's UPCG rows equal the incident's count, and the counts."""
    counts = context_counts(wh, tables, [_day(d) for d in rows_by_date])
    wanted = {str(_day(d)): int(n) for d, n in rows_by_date.items()}
    counts["incident_rows"] = [wanted[str(d)] for d in counts["game_date"]]
    return bool((counts["upcg_rows"] == counts["incident_rows"]).all()), counts


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


def _day(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
