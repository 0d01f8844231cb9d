"""Set-based SQL that derives the league's precompute tables and UPCG history columns from PGS.

Written once in BigQuery Standard SQL with named parameters, like all SQL of the runbook.
"Last 10 games" tables use the same shape: a rolling window over each player's (or team's)
games, valid for the analysis dates after one game and up to the next, so each analysis date
joins exactly one window per player without re-scanning history.
"""

from __future__ import annotations

from runbook_lib.platform.schema import Tables
from runbook_lib.warehouse.schema import TableSchema

# Game dates of each season past the bootstrap window, up to @last_date.
_ANALYSIS_DATES = """
  analysis_dates AS (
    SELECT game_date AS analysis_date, season_year
    FROM (
      SELECT game_date, season_year,
             MIN(game_date) OVER (PARTITION BY season_year) AS season_start
      FROM (SELECT DISTINCT game_date, season_year FROM {schedule})
    )
    WHERE DATE_DIFF(game_date, season_start, DAY) >= @bootstrap_days
      AND game_date <= @last_date
  )"""

_VALID_FOR = """
  JOIN analysis_dates AS d
    ON d.season_year = r.season_year
   AND d.analysis_date > r.game_date
   AND (r.next_game_date IS NULL OR d.analysis_date <= r.next_game_date)"""


def psza_insert(t: Tables) -> str:
    """Return the INSERT that fills PSZA: each player's zone shares over his last 10 games."""
    return f"""
INSERT INTO {t.psza.sql} (player_lookup, analysis_date, primary_scoring_zone,
  paint_rate_last_10, mid_range_rate_last_10, three_pt_rate_last_10, games_in_sample, created_at)
WITH {_ANALYSIS_DATES.format(schedule=t.schedule.sql)},
  rolling AS (
    SELECT player_lookup, season_year, game_date,
           LEAD(game_date) OVER (PARTITION BY player_lookup, season_year ORDER BY game_date) AS next_game_date,
           SUM(paint_attempts) OVER last_10 AS paint,
           SUM(mid_range_attempts) OVER last_10 AS mid_range,
           SUM(three_pt_attempts) OVER last_10 AS three_pt,
           COUNT(*) OVER last_10 AS games
    FROM {t.pgs.sql}
    WINDOW last_10 AS (PARTITION BY player_lookup, season_year ORDER BY game_date
                       ROWS BETWEEN 9 PRECEDING AND CURRENT ROW)
  ),
  shares AS (
    SELECT r.player_lookup, d.analysis_date, r.games,
           CAST(ROUND(100 * SAFE_DIVIDE(r.paint, r.paint + r.mid_range + r.three_pt), 2) AS NUMERIC) AS paint_rate,
           CAST(ROUND(100 * SAFE_DIVIDE(r.mid_range, r.paint + r.mid_range + r.three_pt), 2) AS NUMERIC) AS mid_range_rate,
           CAST(ROUND(100 * SAFE_DIVIDE(r.three_pt, r.paint + r.mid_range + r.three_pt), 2) AS NUMERIC) AS three_pt_rate
    FROM rolling AS r {_VALID_FOR}
  )
SELECT player_lookup, analysis_date,
       CASE WHEN paint_rate IS NULL THEN NULL
            WHEN paint_rate >= mid_range_rate AND paint_rate >= three_pt_rate THEN 'paint'
            WHEN mid_range_rate >= three_pt_rate THEN 'mid_range'
            ELSE 'perimeter' END,
       paint_rate, mid_range_rate, three_pt_rate, games,
       TIMESTAMP_ADD(TIMESTAMP(analysis_date), INTERVAL 6 HOUR)
FROM shares"""


def tdza_insert(t: Tables) -> str:
    """Return the INSERT that fills TDZA: zone FG% allowed over 10 games minus the league's, in points."""
    return f"""
INSERT INTO {t.tdza.sql} (team_abbr, analysis_date, paint_defense_vs_league_avg,
  mid_range_defense_vs_league_avg, three_pt_defense_vs_league_avg, games_in_sample, created_at)
WITH {_ANALYSIS_DATES.format(schedule=t.schedule.sql)},
  allowed AS (
    SELECT opponent_team_abbr AS team_abbr, season_year, game_date,
           SUM(paint_attempts) AS pa, SUM(paint_makes) AS pm,
           SUM(mid_range_attempts) AS ma, SUM(mid_range_makes) AS mm,
           SUM(three_pt_attempts) AS ta, SUM(three_pt_makes) AS tm
    FROM {t.pgs.sql}
    GROUP BY opponent_team_abbr, season_year, game_date
  ),
  rolling AS (
    SELECT team_abbr, season_year, game_date,
           LEAD(game_date) OVER (PARTITION BY team_abbr, season_year ORDER BY game_date) AS next_game_date,
           SAFE_DIVIDE(SUM(pm) OVER last_10, SUM(pa) OVER last_10) AS paint_pct,
           SAFE_DIVIDE(SUM(mm) OVER last_10, SUM(ma) OVER last_10) AS mid_range_pct,
           SAFE_DIVIDE(SUM(tm) OVER last_10, SUM(ta) OVER last_10) AS three_pt_pct,
           COUNT(*) OVER last_10 AS games
    FROM allowed
    WINDOW last_10 AS (PARTITION BY team_abbr, season_year ORDER BY game_date
                       ROWS BETWEEN 9 PRECEDING AND CURRENT ROW)
  ),
  per_date AS (
    SELECT r.team_abbr, d.analysis_date, r.games, r.paint_pct, r.mid_range_pct, r.three_pt_pct
    FROM rolling AS r {_VALID_FOR}
  )
SELECT team_abbr, analysis_date,
       CAST(ROUND(100 * (paint_pct - AVG(paint_pct) OVER (PARTITION BY analysis_date)), 2) AS NUMERIC),
       CAST(ROUND(100 * (mid_range_pct - AVG(mid_range_pct) OVER (PARTITION BY analysis_date)), 2) AS NUMERIC),
       CAST(ROUND(100 * (three_pt_pct - AVG(three_pt_pct) OVER (PARTITION BY analysis_date)), 2) AS NUMERIC),
       games,
       TIMESTAMP_ADD(TIMESTAMP(analysis_date), INTERVAL 6 HOUR)
FROM per_date"""


def upcg_history_update(t: Tables) -> str:
    """Return the UPDATE that fills UPCG's rest, load and usage columns from the previous 14 days of PGS."""
    return f"""
UPDATE {t.upcg.sql} AS u
SET days_rest = h.days_rest,
    back_to_back = (h.days_rest = 0),
    games_in_last_7_days = h.games_7,
    minutes_in_last_7_days = h.minutes_7,
    avg_minutes_per_game_last_7 = h.avg_minutes_7,
    back_to_backs_last_14_days = h.back_to_backs_14,
    avg_usage_rate_last_7_games = h.usage_7
FROM (
  SELECT c.player_lookup, c.game_date,
         -- No game in the last 14 days: a week's rest is as plausible as any.
         COALESCE(DATE_DIFF(c.game_date, MAX(p.game_date), DAY) - 1, 7) AS days_rest,
         COALESCE(COUNTIF(p.game_date > DATE_SUB(c.game_date, INTERVAL 7 DAY)), 0) AS games_7,
         CAST(ROUND(COALESCE(SUM(IF(p.game_date > DATE_SUB(c.game_date, INTERVAL 7 DAY),
                                    p.minutes_played, NULL)), 0)) AS INT64) AS minutes_7,
         ROUND(COALESCE(AVG(IF(p.game_date > DATE_SUB(c.game_date, INTERVAL 7 DAY),
                               p.minutes_played, NULL)), 0), 1) AS avg_minutes_7,
         COALESCE(COUNTIF(p.after_rest = 0), 0) AS back_to_backs_14,
         ROUND(AVG(IF(p.game_date > DATE_SUB(c.game_date, INTERVAL 7 DAY),
                      p.usage_rate, NULL)), 2) AS usage_7
  FROM (SELECT DISTINCT player_lookup, game_date FROM {t.upcg.sql}) AS c
  LEFT JOIN (
    SELECT player_lookup, game_date, minutes_played, usage_rate,
           DATE_DIFF(game_date, LAG(game_date) OVER (PARTITION BY player_lookup ORDER BY game_date),
                     DAY) - 1 AS after_rest
    FROM {t.pgs.sql}
  ) AS p
    ON p.player_lookup = c.player_lookup
   AND p.game_date < c.game_date
   AND p.game_date >= DATE_SUB(c.game_date, INTERVAL 14 DAY)
  GROUP BY c.player_lookup, c.game_date
) AS h
WHERE u.player_lookup = h.player_lookup AND u.game_date = h.game_date"""


def tables_overview(t: Tables, schemas: list[TableSchema]) -> str:
    """Return one query giving each table's rows and the range of its partitioning date."""
    parts = []
    for s in schemas:
        day = s.partition_by or "NULL"
        parts.append(
            f"SELECT '{s.dataset_key}.{s.name}' AS table_name, COUNT(*) AS row_count, "
            f"MIN({day}) AS first_date, MAX({day}) AS last_date, COUNT(DISTINCT {day}) AS dates "
            f"FROM {t.id(s).sql}"
        )
    return "\nUNION ALL\n".join(parts) + "\nORDER BY table_name"


def seasons_overview(t: Tables) -> str:
    """Return the query giving, per season, scheduled dates and games and PGS players per date."""
    return f"""
WITH sched AS (
  SELECT season_year, COUNT(DISTINCT game_date) AS game_dates, COUNT(*) AS games,
         MIN(game_date) AS first_game, MAX(game_date) AS last_game
  FROM {t.schedule.sql} GROUP BY season_year
),
per_date AS (
  SELECT season_year, game_date, COUNT(DISTINCT player_lookup) AS players
  FROM {t.pgs.sql} GROUP BY season_year, game_date
),
played AS (
  SELECT season_year, COUNT(*) AS pgs_dates, CAST(SUM(players) AS INT64) AS pgs_rows,
         MIN(players) AS min_players, ROUND(AVG(players), 1) AS avg_players,
         MAX(players) AS max_players
  FROM per_date GROUP BY season_year
)
SELECT s.season_year, s.game_dates, s.games, s.first_game, s.last_game,
       p.pgs_dates, p.pgs_rows, p.min_players, p.avg_players, p.max_players
FROM sched AS s LEFT JOIN played AS p ON p.season_year = s.season_year
ORDER BY s.season_year"""


# What a complete date holds, per upcoming table: the date's PGS players, or its two teams a game.
_EXPECTED = {
    "upcoming_player_game_context": ("player_lookup", "COUNT(DISTINCT player_lookup)", "pgs"),
    "upcoming_team_game_context": ("team_abbr", "2 * COUNT(*)", "schedule"),
}


def stale_overview(t: Tables, schema: TableSchema) -> str:
    """Return the query counting an upcoming table's stale rows (before @cutoff) and partial dates."""
    entity, expected, reference = _EXPECTED[schema.name]
    return f"""
WITH held AS (
  SELECT game_date, COUNT(*) AS row_count, COUNT(DISTINCT {entity}) AS entities
  FROM {t.id(schema).sql} GROUP BY game_date
),
ref AS (
  SELECT game_date, {expected} AS expected FROM {getattr(t, reference).sql} GROUP BY game_date
)
SELECT '{schema.name}' AS table_name,
       CAST(SUM(h.row_count) AS INT64) AS total_rows,
       CAST(SUM(IF(h.game_date < @cutoff, h.row_count, 0)) AS INT64) AS stale_rows,
       ROUND(100 * SAFE_DIVIDE(SUM(IF(h.game_date < @cutoff, h.row_count, 0)), SUM(h.row_count)), 1)
         AS stale_pct,
       CAST(COUNTIF(h.game_date < @cutoff) AS INT64) AS stale_dates,
       CAST(COUNTIF(h.game_date < @cutoff AND h.entities < 0.9 * r.expected) AS INT64)
         AS partial_stale_dates,
       MIN(IF(h.game_date < @cutoff, h.game_date, NULL)) AS first_stale_date,
       MAX(IF(h.game_date < @cutoff, h.game_date, NULL)) AS last_stale_date
FROM held AS h LEFT JOIN ref AS r ON r.game_date = h.game_date"""


def incident_overview(t: Tables) -> str:
    """Return the query comparing PGS players with UPCG rows on the incident dates."""
    return f"""
WITH pgs AS (
  SELECT game_date, COUNT(DISTINCT player_lookup) AS pgs_players, COUNT(DISTINCT game_id) AS games
  FROM {t.pgs.sql} WHERE game_date BETWEEN @first AND @last GROUP BY game_date
),
upcg AS (
  SELECT game_date, COUNT(*) AS upcg_rows, COUNT(DISTINCT player_lookup) AS upcg_players,
         COUNT(DISTINCT game_id) AS upcg_games
  FROM {t.upcg.sql} WHERE game_date BETWEEN @first AND @last GROUP BY game_date
)
SELECT p.game_date, p.games, p.pgs_players,
       COALESCE(u.upcg_rows, 0) AS upcg_rows, COALESCE(u.upcg_games, 0) AS upcg_games,
       ROUND(100 * SAFE_DIVIDE(COALESCE(u.upcg_players, 0), p.pgs_players), 1) AS coverage_pct
FROM pgs AS p LEFT JOIN upcg AS u ON u.game_date = p.game_date
ORDER BY p.game_date"""
