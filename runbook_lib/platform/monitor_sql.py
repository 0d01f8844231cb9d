"""The monitor's SQL: per game date evidence from the data itself, and the problems it shows.

Written once, in BigQuery Standard SQL, and used three ways: by `runbook monitor` (and the
monitor function) with `@today` as a parameter, and as the two views of the orchestration
dataset people open (the seed's Step 5.1 dashboard and Step 5.2 alert query), where today is
`CURRENT_DATE()` or, on an environment with a fixed `today`, that date. Views take no
parameters, so the thresholds are written into them as literals from the params (validated
numbers, never text).

Every count is a distinct-player count and coverage compares player sets: the dashboard and
the alert used to read only the metadata table, so PCF rows lost after a backfill still
showed 100% COMPLETE (issue 11).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from runbook_lib.platform import schema
from runbook_lib.platform.backfill_dates import GAME_TYPES
from runbook_lib.platform.schema import Tables

# The checks, by the name each problem row carries.
NO_BACKFILL = "no_backfill"
NO_BOX_SCORES = "no_box_scores"
LOW_COVERAGE = "low_coverage"
STALE_UPCOMING = "stale_upcoming"
CHECKS = (NO_BACKFILL, LOW_COVERAGE, NO_BOX_SCORES, STALE_UPCOMING)

DASHBOARD_VIEW = schema.DASHBOARD_VIEW.name
ALERT_VIEW = schema.ALERT_VIEW.name


@dataclass(frozen=True)
class MonitorSettings:
    """The numbers the checks use: the window, the coverage threshold, bootstrap and TTL days."""

    window_days: int = 30
    threshold_pct: float = 90.0
    bootstrap_days: int = 14
    ttl_days: int = 7

    def __post_init__(self):
        # They become SQL literals in the views: numbers only, checked here once.
        for name in ("window_days", "bootstrap_days", "ttl_days"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a whole number of days >= 1")
        float(self.threshold_pct)


def today_literal(today: dt.date | None) -> str:
    """Return the SQL of a view's today: the fixed date, or CURRENT_DATE() when none is fixed."""
    return f"DATE '{today.isoformat()}'" if today else "CURRENT_DATE()"


def evidence_sql(tables: Tables, bootstrap_days: int, first: str, last: str) -> str:
    """Return the per game date evidence: games, PGS and PCF players, coverage, latest metadata.

    One row per scheduled game date (Regular Season and Playoffs) between the SQL date
    expressions `first` and `last`. The range is applied inside each table's scan, so only
    the window's partitions are read (a filter on the result would scan every season first).
    """
    types = ", ".join(f"'{t}'" for t in GAME_TYPES)
    span = f"BETWEEN {first} AND {last}"
    return f"""WITH starts AS (
  SELECT season_year, MIN(game_date) AS season_start FROM {tables.schedule.sql}
  WHERE game_type IN ({types}) GROUP BY season_year
),
scheduled AS (
  SELECT s.game_date, COUNT(DISTINCT s.game_id) AS games,
    MIN(DATE_DIFF(s.game_date, st.season_start, DAY)) < {int(bootstrap_days)} AS bootstrap
  FROM {tables.schedule.sql} AS s JOIN starts AS st ON st.season_year = s.season_year
  WHERE s.game_type IN ({types}) AND s.game_date {span} GROUP BY s.game_date
),
played AS (SELECT DISTINCT game_date, player_lookup FROM {tables.pgs.sql} WHERE game_date {span}),
published AS (
  SELECT DISTINCT game_date, player_lookup FROM {tables.pcf.sql} WHERE game_date {span}
),
covered AS (
  SELECT p.game_date, COUNT(*) AS pgs_players, COUNT(c.player_lookup) AS pcf_players
  FROM played AS p LEFT JOIN published AS c
    ON c.game_date = p.game_date AND c.player_lookup = p.player_lookup
  GROUP BY p.game_date
),
latest AS (
  SELECT analysis_date, status, run_id, tracked_at FROM {tables.backfill_metadata.sql}
  WHERE analysis_date {span}
  QUALIFY ROW_NUMBER() OVER (PARTITION BY analysis_date ORDER BY tracked_at DESC) = 1
)
SELECT s.game_date, s.games, s.bootstrap,
  COALESCE(c.pgs_players, 0) AS pgs_players, COALESCE(c.pcf_players, 0) AS pcf_players,
  CASE WHEN c.pgs_players > 0 THEN ROUND(c.pcf_players / c.pgs_players * 100, 1) END
    AS coverage_pct,
  m.status AS metadata_status, m.run_id AS metadata_run_id, m.tracked_at AS metadata_tracked_at
FROM scheduled AS s
LEFT JOIN covered AS c ON c.game_date = s.game_date
LEFT JOIN latest AS m ON m.analysis_date = s.game_date"""


def window_sql(tables: Tables, settings: MonitorSettings, today: str = "@today") -> str:
    """Return the evidence of the window's game dates: the dashboard, newest first."""
    first = f"DATE_SUB({today}, INTERVAL {settings.window_days} DAY)"
    last = f"DATE_SUB({today}, INTERVAL 1 DAY)"
    return f"""{evidence_sql(tables, settings.bootstrap_days, first, last)}
ORDER BY game_date DESC"""


def problems_sql(tables: Tables, settings: MonitorSettings, today: str = "@today") -> str:
    """Return the alert query: one row per problem the four checks find in the window.

    Columns: check_name, problem_date, table_name, expected, actual, coverage_pct. The day is
    yesterday; freshness is checked on it alone (a missing row for an older date shows as low
    coverage), and a day with no metadata row is not reported a second time as low coverage.
    """
    day = f"DATE_SUB({today}, INTERVAL 1 DAY)"
    cutoff = f"DATE_SUB({today}, INTERVAL {settings.ttl_days} DAY)"
    pct = float(settings.threshold_pct)
    cols = (
        "game_date AS problem_date, CAST(NULL AS STRING) AS table_name, "
        "pgs_players AS expected, pcf_players AS actual, coverage_pct"
    )
    stale = [
        f"SELECT '{STALE_UPCOMING}', CAST(NULL AS DATE), '{t.short}', COUNT(*), "
        f"CAST(NULL AS INT64), CAST(NULL AS FLOAT64) FROM {t.sql} "
        f"WHERE game_date < {cutoff} HAVING COUNT(*) > 0"
        for t in (tables.upcg, tables.utcg)
    ]
    return f"""WITH ev AS ({window_sql(tables, settings, today)})
SELECT '{NO_BACKFILL}' AS check_name, {cols} FROM ev
WHERE game_date = {day} AND metadata_status IS NULL
UNION ALL
SELECT '{NO_BOX_SCORES}', {cols} FROM ev WHERE NOT bootstrap AND pgs_players = 0
UNION ALL
SELECT '{LOW_COVERAGE}', {cols} FROM ev
WHERE NOT bootstrap AND pgs_players > 0 AND coverage_pct < {pct}
  AND NOT (game_date = {day} AND metadata_status IS NULL)
UNION ALL
{(chr(10) + "UNION ALL" + chr(10)).join(stale)}"""


def view_statements(tables: Tables, settings: MonitorSettings, today: dt.date | None) -> dict:
    """Return {view table id: CREATE OR REPLACE VIEW statement} for the two monitoring views."""
    lit = today_literal(today)
    bodies = {
        DASHBOARD_VIEW: window_sql(tables, settings, lit),
        ALERT_VIEW: problems_sql(tables, settings, lit),
    }
    out = {}
    for name, body in bodies.items():
        view = tables.view(name)
        out[view] = f"CREATE OR REPLACE VIEW {view.sql} AS\n{body}"
    return out
