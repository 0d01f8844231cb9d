"""The v1_4factors composite factors as one set-based statement into the PCF staging table.

One INSERT builds every player of every date of a chunk: the context comes from UPCG for the
dates the backfill decided to trust, and from a synthetic context built out of PGS for the
dates it decided to fall back on (fact sheet 2.4 step 6). Shot-zone mismatch joins PSZA/TDZA on
analysis_date = game_date. Formulas and defaults are the fact sheet's section 4.6; nothing
loops over players in Python.
"""

from __future__ import annotations

import datetime as dt

from runbook_lib.platform.schema import PCF_STAGING, Tables
from runbook_lib.warehouse.base import Warehouse

CALCULATION_VERSION = "v1_4factors"
# Fallback history window: the original reads the previous 14 days of PGS (strictly before the
# analysis date) and derives the 7-day columns from it (HEAD's strict `>` 7-day boundary);
# back_to_backs_last_14_days is the constant 0 there, so only the last 7 days shape a score.
HISTORY_DAYS = 14

# Every column the staging table receives, in order (PCF's columns plus run_id).
OUTPUT_COLUMNS = PCF_STAGING.columns

_UPCG_CONTEXT = """
  SELECT player_lookup, universal_player_id, game_id, game_date, opponent_team_abbr,
    days_rest, back_to_back, games_in_last_7_days, minutes_in_last_7_days,
    CAST(avg_minutes_per_game_last_7 AS FLOAT64) AS avg_minutes_per_game_last_7,
    back_to_backs_last_14_days, player_age,
    CAST(projected_usage_rate AS FLOAT64) AS projected_usage_rate,
    CAST(avg_usage_rate_last_7_games AS FLOAT64) AS avg_usage_rate_last_7_games,
    star_teammates_out, CAST(pace_differential AS FLOAT64) AS pace_differential,
    'UPCG' AS context_source
  FROM {upcg}
  WHERE game_date IN UNNEST(@upcg_dates)
  -- UPCG has held duplicate rows (26.6% of it in Dec 2025); the MERGE key needs one per player.
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY game_date, player_lookup ORDER BY processed_at DESC, game_id) = 1"""

_FALLBACK_CONTEXT = """
  SELECT t.player_lookup, t.universal_player_id, t.game_id, t.game_date, t.opponent_team_abbr,
    IF(COALESCE(h.played_yesterday, FALSE), 0, 1) AS days_rest,
    COALESCE(h.played_yesterday, FALSE) AS back_to_back,
    COALESCE(h.games7, 0) AS games_in_last_7_days,
    CAST(FLOOR(COALESCE(h.minutes7, 0)) AS INT64) AS minutes_in_last_7_days,
    COALESCE(h.mpg7, 0) AS avg_minutes_per_game_last_7,
    0 AS back_to_backs_last_14_days,
    CAST(NULL AS INT64) AS player_age,
    CAST(NULL AS FLOAT64) AS projected_usage_rate,
    h.usage7 AS avg_usage_rate_last_7_games,
    0 AS star_teammates_out,
    CAST(NULL AS FLOAT64) AS pace_differential,
    'PGS_FALLBACK' AS context_source
  FROM pgs_today AS t
  LEFT JOIN history AS h USING (game_date, player_lookup)"""

_FALLBACK_CTES = """
pgs_today AS (
  SELECT player_lookup, universal_player_id, game_id, game_date, opponent_team_abbr
  FROM {pgs}
  WHERE game_date IN UNNEST(@fallback_dates)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY game_date, player_lookup ORDER BY game_id) = 1
),
history_all AS (
  -- Windows over each player's PGS rows instead of a self-join: the frame is the player's
  -- games of the previous days (RANGE over day numbers), so the cost stays O(rows log rows).
  SELECT game_date, player_lookup,
    COUNT(*) OVER prev_day > 0 AS played_yesterday,
    COUNT(*) OVER last7 AS games7,
    SUM(CAST(minutes_played AS FLOAT64)) OVER last7 AS minutes7,
    AVG(CAST(minutes_played AS FLOAT64)) OVER last7 AS mpg7,
    AVG(CAST(usage_rate AS FLOAT64)) OVER last7 AS usage7
  FROM {pgs}
  -- Constant bounds let BigQuery prune PGS partitions to the chunk's window.
  WHERE game_date >= @history_start AND game_date <= @history_end
  WINDOW
    prev_day AS (PARTITION BY player_lookup ORDER BY UNIX_DATE(game_date)
                 RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING),
    -- HEAD's strict 7-day boundary: dates d-6 .. d-1.
    last7 AS (PARTITION BY player_lookup ORDER BY UNIX_DATE(game_date)
              RANGE BETWEEN 6 PRECEDING AND 1 PRECEDING)
),
history AS (
  SELECT * FROM history_all
  WHERE game_date IN UNNEST(@fallback_dates)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY game_date, player_lookup ORDER BY games7) = 1
),"""

_FACTORS = """
psza AS (
  SELECT * FROM {psza} WHERE analysis_date IN UNNEST(@dates)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY player_lookup, analysis_date ORDER BY created_at DESC) = 1
),
tdza AS (
  SELECT * FROM {tdza} WHERE analysis_date IN UNNEST(@dates)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY team_abbr, analysis_date ORDER BY created_at DESC) = 1
),
inputs AS (
  SELECT c.*,
    z.player_lookup IS NOT NULL AS has_zone,
    d.team_abbr IS NOT NULL AS has_defense,
    z.games_in_sample,
    -- Primary zone: paint, mid_range, anything else is the perimeter (3pt). Default paint.
    CAST(CASE COALESCE(z.primary_scoring_zone, 'paint')
      WHEN 'paint' THEN z.paint_rate_last_10
      WHEN 'mid_range' THEN z.mid_range_rate_last_10
      ELSE z.three_pt_rate_last_10 END AS FLOAT64) AS zone_rate,
    CAST(CASE COALESCE(z.primary_scoring_zone, 'paint')
      WHEN 'paint' THEN d.paint_defense_vs_league_avg
      WHEN 'mid_range' THEN d.mid_range_defense_vs_league_avg
      ELSE d.three_pt_defense_vs_league_avg END AS FLOAT64) AS zone_defense
  FROM ctx AS c
  LEFT JOIN psza AS z ON z.player_lookup = c.player_lookup AND z.analysis_date = c.game_date
  LEFT JOIN tdza AS d ON d.team_abbr = c.opponent_team_abbr AND d.analysis_date = c.game_date
),
raw AS (
  SELECT i.*,
    100
    + CASE WHEN COALESCE(back_to_back, FALSE) THEN -15
           WHEN COALESCE(days_rest, 1) >= 3 THEN 5 ELSE 0 END
    + IF(COALESCE(games_in_last_7_days, 3) >= 4, -10, 0)
    + IF(COALESCE(minutes_in_last_7_days, 200) > 240, -10, 0)
    + IF(COALESCE(avg_minutes_per_game_last_7, 30) > 35, -8, 0)
    + CASE WHEN COALESCE(back_to_backs_last_14_days, 0) >= 2 THEN -12
           WHEN COALESCE(back_to_backs_last_14_days, 0) = 1 THEN -5 ELSE 0 END
    + CASE WHEN COALESCE(player_age, 25) >= 35 THEN -10
           WHEN COALESCE(player_age, 25) >= 30 THEN -5 ELSE 0 END AS fatigue_raw,
    IF(has_zone AND has_defense AND zone_defense IS NOT NULL,
       zone_defense * LEAST(COALESCE(zone_rate, 50) / 50, 1), 0) AS shot_base,
    IF(COALESCE(avg_usage_rate_last_7_games, 25) = 0, 0,
       (COALESCE(projected_usage_rate, 25) - COALESCE(avg_usage_rate_last_7_games, 25)) * 0.3)
      AS usage_raw
  FROM inputs AS i
),
scored AS (
  SELECT r.*,
    GREATEST(0, LEAST(100, fatigue_raw)) AS fatigue,
    GREATEST(-10, LEAST(10, IF(ABS(shot_base) > 5, shot_base * 1.2, shot_base))) AS shot_zone,
    GREATEST(-3, LEAST(3, COALESCE(pace_differential, 0) / 2)) AS pace,
    GREATEST(-3, LEAST(3, usage_raw * CASE
      WHEN usage_raw > 0 AND star_teammates_out >= 2 THEN 1.30
      WHEN usage_raw > 0 AND star_teammates_out = 1 THEN 1.15 ELSE 1 END)) AS usage_spike
  FROM raw AS r
),
totals AS (
  SELECT s.*,
    -- The four deferred factors (referee, look-ahead, travel, opponent) add 0.
    ROUND((fatigue - 100) / 20 + shot_zone + pace + usage_spike, 2) AS total,
    RTRIM(CONCAT(
      IF(days_rest IS NULL, 'days_rest,', ''),
      IF(projected_usage_rate IS NULL, 'projected_usage_rate,', ''),
      IF(pace_differential IS NULL, 'pace_differential,', ''),
      IF(has_zone, '', 'player_shot_zone,'),
      IF(has_defense, '', 'team_defense_zone,')), ',') AS missing
  FROM scored AS s
)
SELECT player_lookup, universal_player_id, game_date, game_id, game_date AS analysis_date,
  CAST(fatigue AS INT64) AS fatigue_score,
  CAST(shot_zone AS NUMERIC) AS shot_zone_mismatch_score,
  CAST(pace AS NUMERIC) AS pace_score,
  CAST(usage_spike AS NUMERIC) AS usage_spike_score,
  CAST(0 AS NUMERIC) AS referee_favorability_score,
  CAST(0 AS NUMERIC) AS look_ahead_pressure_score,
  CAST(0 AS NUMERIC) AS travel_impact_score,
  CAST(0 AS NUMERIC) AS opponent_strength_score,
  CAST(total AS NUMERIC) AS total_composite_adjustment,
  '{version}' AS calculation_version,
  CAST(20 * ((IF(days_rest IS NULL, 0, 1)) + IF(projected_usage_rate IS NULL, 0, 1)
    + IF(pace_differential IS NULL, 0, 1) + IF(has_zone, 1, 0) + IF(has_defense, 1, 0))
    AS NUMERIC) AS data_completeness_pct,
  NULLIF(missing, '') AS missing_data_fields,
  (fatigue < 50 OR ABS(shot_zone) > 8 OR ABS(total) > 12) AS has_warnings,
  NULLIF(RTRIM(CONCAT(
    IF(fatigue < 50, 'EXTREME_FATIGUE,', ''),
    IF(ABS(shot_zone) > 8, 'EXTREME_MATCHUP,', ''),
    IF(ABS(total) > 12, 'EXTREME_ADJUSTMENT,', '')), ','), '') AS warning_details,
  context_source,
  -- Early season: the shot-zone profile rests on fewer than 10 games (or none yet).
  COALESCE(games_in_sample, 0) < 10 AS early_season_flag,
  CURRENT_TIMESTAMP() AS created_at,
  CURRENT_TIMESTAMP() AS processed_at,
  @run_id AS run_id
FROM totals"""


def factors_sql(tables: Tables, *, with_upcg: bool, with_fallback: bool) -> str:
    """Return the INSERT that builds staged PCF rows for the UPCG and/or fallback dates."""
    if not (with_upcg or with_fallback):
        raise ValueError("factors_sql needs UPCG dates, fallback dates or both")
    branches = []
    if with_upcg:
        branches.append(_UPCG_CONTEXT.format(upcg=tables.upcg.sql))
    if with_fallback:
        branches.append(_FALLBACK_CONTEXT)
    fallback_ctes = _FALLBACK_CTES.format(pgs=tables.pgs.sql) if with_fallback else ""
    ctx = "ctx AS (" + "\n  UNION ALL\n".join(branches) + "\n),"
    body = _FACTORS.format(
        psza=tables.psza.sql,
        tdza=tables.tdza.sql,
        version=CALCULATION_VERSION,
    )
    cols = ", ".join(OUTPUT_COLUMNS)
    return f"INSERT INTO {tables.id(PCF_STAGING).sql} ({cols})\nWITH{fallback_ctes}\n{ctx}{body}"


def build_staging(
    wh: Warehouse,
    tables: Tables,
    run_id: str,
    upcg_dates: list[dt.date],
    fallback_dates: list[dt.date],
) -> int:
    """Insert the factors of every player of the given dates into staging; return rows built."""
    upcg_dates, fallback_dates = sorted(set(upcg_dates)), sorted(set(fallback_dates))
    if set(upcg_dates) & set(fallback_dates):
        raise ValueError("a date is either built from UPCG or from the PGS fallback, not both")
    dates = upcg_dates + fallback_dates
    if not dates:
        return 0
    # Empty arrays are never sent: BigQuery cannot type an empty array parameter.
    params: dict = {"run_id": run_id, "dates": sorted(dates)}
    if upcg_dates:
        params["upcg_dates"] = upcg_dates
    if fallback_dates:
        params["fallback_dates"] = fallback_dates
        params["history_start"] = fallback_dates[0] - dt.timedelta(days=HISTORY_DAYS)
        params["history_end"] = fallback_dates[-1]
    sql = factors_sql(tables, with_upcg=bool(upcg_dates), with_fallback=bool(fallback_dates))
    return wh.execute(sql, params)
