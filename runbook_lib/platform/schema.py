"""Declared schemas of the platform's tables: the columns the safeguards, factors and runbook use.

Names are the original platform's (see the README glossary). The types of a declaration
(`Field`, `TableSchema`) are the warehouse's: runbook_lib/warehouse/schema.py.
"""

from __future__ import annotations

from runbook_lib.warehouse.ids import TableId, check_name
from runbook_lib.warehouse.schema import TableSchema, fields_of

UPCG = TableSchema(
    "analytics",
    "upcoming_player_game_context",
    fields_of("""
        player_lookup STRING REQUIRED, universal_player_id STRING, game_id STRING REQUIRED,
        game_date DATE REQUIRED, team_abbr STRING REQUIRED, opponent_team_abbr STRING REQUIRED,
        has_prop_line BOOL, days_rest INT64, back_to_back BOOL, games_in_last_7_days INT64,
        minutes_in_last_7_days INT64, avg_minutes_per_game_last_7 NUMERIC,
        back_to_backs_last_14_days INT64, player_age INT64, projected_usage_rate NUMERIC,
        avg_usage_rate_last_7_games NUMERIC, star_teammates_out INT64, pace_differential NUMERIC,
        opponent_pace_last_10 NUMERIC, created_at TIMESTAMP, processed_at TIMESTAMP"""),
    partition_by="game_date",
    cluster_by=("player_lookup", "universal_player_id", "game_date"),
    description="UPCG: pre-game context of players for upcoming games (Phase 3).",
    key=("player_lookup", "game_id", "game_date"),
)

UTCG = TableSchema(
    "analytics",
    "upcoming_team_game_context",
    fields_of("""
        team_abbr STRING REQUIRED, game_id STRING REQUIRED, game_date DATE REQUIRED,
        season_year INT64, opponent_team_abbr STRING, home_game BOOL, team_days_rest INT64,
        team_back_to_back BOOL, game_spread NUMERIC, game_total NUMERIC,
        created_at TIMESTAMP, processed_at TIMESTAMP"""),
    partition_by="game_date",
    cluster_by=("game_date", "team_abbr", "game_id"),
    description="UTCG: pre-game context of teams for upcoming games (Phase 3).",
    key=("team_abbr", "game_id", "game_date"),
)

PGS = TableSchema(
    "analytics",
    "player_game_summary",
    fields_of("""
        player_lookup STRING REQUIRED, universal_player_id STRING, player_full_name STRING,
        game_id STRING REQUIRED, game_date DATE REQUIRED, team_abbr STRING REQUIRED,
        opponent_team_abbr STRING REQUIRED, season_year INT64 REQUIRED, points INT64,
        minutes_played NUMERIC, assists INT64, offensive_rebounds INT64, defensive_rebounds INT64,
        steals INT64, blocks INT64, turnovers INT64, fg_attempts INT64, fg_makes INT64,
        three_pt_attempts INT64, three_pt_makes INT64, ft_attempts INT64, ft_makes INT64,
        paint_attempts INT64, paint_makes INT64, mid_range_attempts INT64, mid_range_makes INT64,
        usage_rate NUMERIC, starter_flag BOOL REQUIRED, win_flag BOOL REQUIRED,
        is_active BOOL REQUIRED, created_at TIMESTAMP"""),
    partition_by="game_date",
    cluster_by=("universal_player_id", "player_lookup", "team_abbr", "game_date"),
    description="PGS: one row per player per game actually played (box score).",
)

SCHEDULE = TableSchema(
    "reference",
    "nba_schedule",
    fields_of("""
        game_id STRING REQUIRED, nba_game_id STRING REQUIRED, game_date DATE REQUIRED,
        season_year INT64 REQUIRED, home_team_abbr STRING REQUIRED,
        away_team_abbr STRING REQUIRED, game_type STRING REQUIRED"""),
    partition_by="game_date",
    cluster_by=("season_year",),
    description="The league schedule (Regular Season and Playoffs).",
)

PSZA = TableSchema(
    "precompute",
    "player_shot_zone_analysis",
    fields_of("""
        player_lookup STRING REQUIRED, analysis_date DATE REQUIRED, primary_scoring_zone STRING,
        paint_rate_last_10 NUMERIC, mid_range_rate_last_10 NUMERIC, three_pt_rate_last_10 NUMERIC,
        games_in_sample INT64, created_at TIMESTAMP"""),
    partition_by="analysis_date",
    cluster_by=("player_lookup", "analysis_date"),
    description="PSZA: each player's shot-zone profile over his last 10 games.",
)

TDZA = TableSchema(
    "precompute",
    "team_defense_zone_analysis",
    fields_of("""
        team_abbr STRING REQUIRED, analysis_date DATE REQUIRED,
        paint_defense_vs_league_avg NUMERIC, mid_range_defense_vs_league_avg NUMERIC,
        three_pt_defense_vs_league_avg NUMERIC, games_in_sample INT64, created_at TIMESTAMP"""),
    partition_by="analysis_date",
    cluster_by=("team_abbr", "analysis_date"),
    description="TDZA: each team's defense by zone against the league average.",
)

_PCF_FIELDS = """
    player_lookup STRING REQUIRED, universal_player_id STRING, game_date DATE REQUIRED,
    game_id STRING REQUIRED, analysis_date DATE, fatigue_score INT64,
    shot_zone_mismatch_score NUMERIC, pace_score NUMERIC, usage_spike_score NUMERIC,
    referee_favorability_score NUMERIC, look_ahead_pressure_score NUMERIC,
    travel_impact_score NUMERIC, opponent_strength_score NUMERIC,
    total_composite_adjustment NUMERIC, calculation_version STRING,
    data_completeness_pct NUMERIC, missing_data_fields STRING, has_warnings BOOL,
    warning_details STRING, context_source STRING, early_season_flag BOOL,
    created_at TIMESTAMP, processed_at TIMESTAMP"""

PCF = TableSchema(
    "precompute",
    "player_composite_factors",
    fields_of(_PCF_FIELDS),
    partition_by="game_date",
    cluster_by=("player_lookup", "universal_player_id", "game_date"),
    description="PCF: the v1_4factors composite adjustments per player per game date.",
)

PCF_STAGING = TableSchema(
    "precompute",
    "player_composite_factors_staging",
    fields_of(_PCF_FIELDS + ", run_id STRING REQUIRED"),
    partition_by="game_date",
    cluster_by=("run_id", "game_date"),
    description="Rows a backfill built but has not yet validated; merged into PCF per date.",
)

BACKFILL_METADATA = TableSchema(
    "orchestration",
    "backfill_processing_metadata",
    fields_of("""
        analysis_date DATE REQUIRED, expected_players INT64 REQUIRED,
        actual_players INT64 REQUIRED, coverage_pct FLOAT64 REQUIRED, data_source STRING,
        last_created_at TIMESTAMP, status STRING REQUIRED, tracked_at TIMESTAMP REQUIRED,
        run_id STRING, context_source STRING, upcg_players INT64, error STRING"""),
    partition_by="analysis_date",
    cluster_by=("status",),
    description="One row per backfilled date per run, written by the backfill itself.",
)

CLEANUP_OPERATIONS = TableSchema(
    "orchestration",
    "cleanup_operations",
    fields_of("""
        cleanup_type STRING REQUIRED, cleanup_time TIMESTAMP REQUIRED, ttl_days INT64 REQUIRED,
        cutoff_date DATE REQUIRED, tables_cleaned STRING REQUIRED,
        total_records_deleted INT64 REQUIRED, errors STRING, status STRING REQUIRED,
        trigger STRING, run_id STRING, backups STRING, duration_seconds FLOAT64"""),
    partition_by="DATE(cleanup_time)",
    cluster_by=("cleanup_type",),
    description="One audit row per cleanup run (CLI, runbook phase or Cloud Function).",
)

RUNBOOK_RUNS = TableSchema(
    "orchestration",
    "runbook_runs",
    fields_of("""
        run_id STRING REQUIRED, env STRING REQUIRED, record_count INT64 REQUIRED,
        head_hash STRING REQUIRED, header_hash STRING REQUIRED, record_hashes STRING REQUIRED,
        anchored_at TIMESTAMP REQUIRED, anchored_by STRING"""),
    partition_by="DATE(anchored_at)",
    cluster_by=("run_id",),
    description="One row per sealed head of a runbook run's audit chain (run/anchor.py).",
)

MONITOR_RUNS = TableSchema(
    "orchestration",
    "monitor_runs",
    fields_of("""
        monitor_day DATE REQUIRED, checked_at TIMESTAMP REQUIRED, window_days INT64 REQUIRED,
        game_dates INT64 REQUIRED, problems INT64 REQUIRED, problem_keys STRING,
        alerts_sent INT64, channel STRING, run_id STRING"""),
    partition_by="monitor_day",
    description="One row per monitor run: what it checked and found (platform/monitor.py).",
)

MONITOR_ALERTS = TableSchema(
    "orchestration",
    "monitor_alerts",
    fields_of("""
        monitor_day DATE REQUIRED, alert_key STRING REQUIRED, check_name STRING REQUIRED,
        problem_date DATE, text STRING REQUIRED, channel STRING, http_status INT64,
        sent_at TIMESTAMP REQUIRED, run_id STRING"""),
    partition_by="monitor_day",
    description="One row per alert delivered: one alert per problem per day (platform/monitor.py).",
)

# The monitor's two views (platform/monitor_sql.py creates them): their columns, declared so
# what reads them is typed like any table. Never created as tables.
DASHBOARD_VIEW = TableSchema(
    "orchestration",
    "backfill_coverage_monitor",
    fields_of("""
        game_date DATE, games INT64, bootstrap BOOL, pgs_players INT64, pcf_players INT64,
        coverage_pct FLOAT64, metadata_status STRING, metadata_run_id STRING,
        metadata_tracked_at TIMESTAMP"""),
    description="View: per game date of the last 30 days, PGS vs PCF players and metadata.",
)

ALERT_VIEW = TableSchema(
    "orchestration",
    "backfill_coverage_alerts",
    fields_of("""
        check_name STRING, problem_date DATE, table_name STRING, expected INT64, actual INT64,
        coverage_pct FLOAT64"""),
    description="View: one row per problem the monitor's four checks find.",
)

# The platform's tables: seeded, probed by pre-flight. The runbook's own runs table is not
# among them: the first archive of a run creates it (run/anchor.py), so a fresh project passes
# pre-flight before any run was ever anchored.
ALL_TABLES: tuple[TableSchema, ...] = (
    SCHEDULE,
    PGS,
    UPCG,
    UTCG,
    PSZA,
    TDZA,
    PCF,
    PCF_STAGING,
    BACKFILL_METADATA,
    CLEANUP_OPERATIONS,
)
UPCOMING_TABLES: tuple[TableSchema, ...] = (UPCG, UTCG)


class _Declared:
    """A `Tables` attribute: the TableId of one declared table, in that Tables' project."""

    def __init__(self, schema: TableSchema):
        self.schema = schema

    def __get__(self, tables: Tables | None, owner=None):
        return self if tables is None else tables.id(self.schema)


class Tables:
    """Resolve declared schemas to TableIds for one project and its dataset names."""

    schedule = _Declared(SCHEDULE)
    pgs = _Declared(PGS)
    upcg = _Declared(UPCG)
    utcg = _Declared(UTCG)
    psza = _Declared(PSZA)
    tdza = _Declared(TDZA)
    pcf = _Declared(PCF)
    pcf_staging = _Declared(PCF_STAGING)
    backfill_metadata = _Declared(BACKFILL_METADATA)
    cleanup_operations = _Declared(CLEANUP_OPERATIONS)
    runbook_runs = _Declared(RUNBOOK_RUNS)
    monitor_runs = _Declared(MONITOR_RUNS)
    monitor_alerts = _Declared(MONITOR_ALERTS)

    def __init__(self, project: str, datasets: dict[str, str]):
        self.project = project
        self.datasets = {k: check_name(v, "dataset") for k, v in datasets.items()}

    def id(self, schema: TableSchema) -> TableId:
        """Return the TableId of a declared table."""
        return TableId(self.project, self.datasets[schema.dataset_key], schema.name)

    def view(self, name: str) -> TableId:
        """Return the TableId of a view of the orchestration dataset (the monitoring views)."""
        return TableId(self.project, self.datasets["orchestration"], check_name(name))
