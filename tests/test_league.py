"""The synthetic league: realistic per-date counts, the incident exactly, stale rows, determinism."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from runbook_lib import paths
from runbook_lib.cli import main
from runbook_lib.errors import ParamsError, TableNotFoundError
from runbook_lib.platform.league import describe_warehouse, seed_league
from runbook_lib.platform.league_data import SEASONS, make_schedule
from runbook_lib.platform.schema import ALL_TABLES, PGS, PSZA, TDZA, UPCG
from runbook_lib.run.params import load_params
from runbook_lib.warehouse import connect
from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse
from runbook_lib.warehouse.emulator import client_for
from runbook_lib.warehouse.ids import TableId

TODAY = dt.date(2025, 4, 10)
FEB = {d: dt.date(2023, 2, d) for d in (23, 24, 25)}


@pytest.fixture
def t(local_params):
    return local_params.tables


def per_date_players(wh, t) -> pd.Series:
    df = wh.query(
        f"SELECT game_date, COUNT(DISTINCT player_lookup) AS n FROM {t.pgs.sql} GROUP BY game_date"
    )
    return df.set_index(df["game_date"].astype("datetime64[ns]").dt.date)["n"]


def table_hashes(wh, tables) -> dict[str, tuple]:
    """Return each declared table's row count and order-free sum of row hashes (DuckDB's hash)."""
    out = {}
    con = duckdb.connect(str(wh.path), read_only=True)
    try:
        for schema in ALL_TABLES:
            tid = tables.id(schema)
            ref = f'"{tid.project}"."{tid.dataset}"."{tid.table}"'
            sql = f"SELECT COUNT(*), SUM(CAST(hash(t) AS HUGEINT)) FROM {ref} AS t"
            out[schema.name] = con.execute(sql).fetchone()
    finally:
        con.close()
    return out


def test_every_played_date_has_130_to_190_players(seeded_wh, t):
    counts = per_date_players(seeded_wh, t)
    assert len(counts) > 600
    assert counts.between(130, 190).all(), counts[~counts.between(130, 190)]


def test_each_season_has_160_to_170_dates_of_6_to_12_games_and_82_games_a_team(seeded_wh, t):
    games = seeded_wh.query(
        f"SELECT season_year, game_date, home_team_abbr, away_team_abbr FROM {t.schedule.sql}"
    )
    per_date = games.groupby(["season_year", "game_date"]).size()
    assert per_date.between(6, 12).all()
    assert per_date.groupby(level=0).size().between(160, 170).all()
    teams = pd.concat([games[["season_year", "home_team_abbr"]].set_axis(["season", "team"], axis=1),
                       games[["season_year", "away_team_abbr"]].set_axis(["season", "team"], axis=1)])  # fmt: skip
    per_team = teams.value_counts()
    assert len(per_team) == 4 * 30 and (per_team == 82).all()


def test_incident_dates_hold_exactly_the_original_counts(seeded_wh, t):
    counts = per_date_players(seeded_wh, t)
    assert counts[FEB[23]] == 187 and counts[FEB[24]] == 175
    upcg = seeded_wh.query(
        f"SELECT game_date, player_lookup, game_id FROM {t.upcg.sql} WHERE game_date BETWEEN @a AND @b",
        {"a": FEB[23], "b": FEB[25]},
    )
    day = upcg["game_date"].astype("datetime64[ns]").dt.date
    assert upcg[day == FEB[23]][["player_lookup", "game_id"]].values.tolist() == [
        ["reggiejackson", "20230223_DEN_CLE"]
    ]
    assert (day == FEB[24]).sum() == 68
    assert upcg[day == FEB[24]]["game_id"].nunique() == 6  # "6/8 games", as the validation saw


def test_the_day_after_the_incident_is_a_normal_date_without_upcg(seeded_wh, t):
    assert 170 <= per_date_players(seeded_wh, t)[FEB[25]] <= 190
    assert seeded_wh.row_count(t.upcg, "game_date = @d", {"d": FEB[25]}) == 0
    assert seeded_wh.row_count(t.utcg, "game_date = @d", {"d": FEB[25]}) == 0


def test_describe_reports_the_incident_coverage(seeded_wh, t):
    incident = describe_warehouse(seeded_wh, t, TODAY)["incident"]
    assert incident["pgs_players"].tolist() == [187, 175, 180]
    assert incident["upcg_rows"].tolist() == [1, 68, 0]
    assert incident["coverage_pct"].tolist() == [0.5, 38.9, 0.0]


def test_describe_of_an_unseeded_warehouse_names_the_missing_table(local_params):
    with pytest.raises(TableNotFoundError, match="nba_schedule.*runbook seed"):
        describe_warehouse(connect(local_params), local_params.tables, TODAY)


def test_stale_rows_span_many_dates_in_both_tables_some_partial_under_the_cleanup_cap(
    seeded_wh, t, local_params
):
    stale = describe_warehouse(seeded_wh, t, TODAY)["stale"].set_index("table_name")
    upcg, utcg = stale.loc[UPCG.name], stale.loc["upcoming_team_game_context"]
    assert upcg["stale_rows"] >= 5000 and utcg["stale_rows"] >= 500
    assert upcg["stale_rows"] + utcg["stale_rows"] < 100_000
    for row in (upcg, utcg):
        assert row["stale_dates"] >= 40
        assert 3 <= row["partial_stale_dates"] < row["stale_dates"] / 2
        # The first local cleanup must fit under the cap on the share of a table it may delete.
        assert row["stale_pct"] < 100 * local_params.cleanup.max_delete_fraction


def test_no_partial_stale_date_near_the_incident_but_the_incident_dates(seeded_wh, t):
    df = seeded_wh.query(f"""
        SELECT u.game_date, COUNT(DISTINCT u.player_lookup) AS upcg, ANY_VALUE(p.n) AS pgs
        FROM {t.upcg.sql} AS u
        JOIN (SELECT game_date, COUNT(DISTINCT player_lookup) AS n FROM {t.pgs.sql} GROUP BY game_date) AS p
          ON p.game_date = u.game_date
        WHERE u.game_date BETWEEN '2023-02-20' AND '2023-02-28'
        GROUP BY u.game_date""")
    partial = df[df["upcg"] < 0.9 * df["pgs"]]["game_date"].astype("datetime64[ns]").dt.date
    assert sorted(partial) == [FEB[23], FEB[24]]


def test_a_seven_day_ttl_keeps_recent_and_upcoming_rows_and_deletes_older_ones(seeded_wh, t):
    for table in (t.upcg, t.utcg):
        window = {
            "today": TODAY,
            "cutoff": TODAY - dt.timedelta(days=7),
            "old": TODAY - dt.timedelta(days=10),
        }
        assert seeded_wh.row_count(table, "game_date >= @today", window) > 0
        assert seeded_wh.row_count(table, "game_date >= @cutoff AND game_date < @today", window) > 0
        assert seeded_wh.row_count(table, "game_date >= @old AND game_date < @cutoff", window) > 0
    assert seeded_wh.row_count(t.pgs, "game_date >= @today", {"today": TODAY}) == 0


@pytest.mark.parametrize("schema", [PSZA, TDZA], ids=["psza", "tdza"])
def test_bootstrap_window_has_no_precompute_rows_and_day_14_has_them(
    seeded_wh, local_params, schema
):
    table = local_params.tables.id(schema)
    for season in SEASONS:
        day14 = season.start + dt.timedelta(days=14)
        window = {"start": season.start, "day14": day14, "day21": day14 + dt.timedelta(days=7)}
        assert (
            seeded_wh.row_count(table, "analysis_date >= @start AND analysis_date < @day14", window)
            == 0
        )
        assert (
            seeded_wh.row_count(table, "analysis_date >= @day14 AND analysis_date < @day21", window)
            > 0
        )


def test_box_scores_have_240_minutes_and_one_winner_per_game(seeded_wh, t):
    teams = seeded_wh.query(f"""
        SELECT game_id, team_abbr, SUM(minutes_played) AS minutes, SUM(points) AS points,
               COUNT(DISTINCT win_flag) AS flags, LOGICAL_AND(win_flag) AS won
        FROM {t.pgs.sql} GROUP BY game_id, team_abbr""")
    assert teams["minutes"].astype(float).between(239, 241).all()
    assert (teams["flags"] == 1).all()
    games = teams.groupby("game_id").agg(winners=("won", "sum"), top=("points", "max"))
    assert (games["winners"] == 1).all()
    winners = teams[teams["won"]].set_index("game_id")["points"]
    assert (winners == games.loc[winners.index, "top"]).all()
    usage = seeded_wh.query(f"SELECT MIN(usage_rate) AS lo, MAX(usage_rate) AS hi FROM {t.pgs.sql}")
    assert float(usage["lo"].iloc[0]) >= 10 and float(usage["hi"].iloc[0]) <= 35


def test_upcg_rows_carry_the_columns_the_factors_read(seeded_wh, t):
    cols = ["days_rest", "back_to_back", "games_in_last_7_days", "minutes_in_last_7_days",
            "avg_minutes_per_game_last_7", "back_to_backs_last_14_days", "player_age",
            "projected_usage_rate", "star_teammates_out", "pace_differential", "opponent_pace_last_10"]  # fmt: skip
    nulls = " + ".join(f"COUNTIF({c} IS NULL)" for c in cols)
    assert int(seeded_wh.query(f"SELECT {nulls} AS n FROM {t.upcg.sql}")["n"].iloc[0]) == 0
    rest = seeded_wh.query(f"SELECT COUNTIF(back_to_back) AS b2b, COUNT(*) AS n FROM {t.upcg.sql}")
    assert 0 < rest["b2b"].iloc[0] < rest["n"].iloc[0] / 2


def test_schedules_differ_between_seeds():
    assert not make_schedule(SEASONS[0], 1)["game_id"].equals(
        make_schedule(SEASONS[0], 2)["game_id"]
    )


def test_reseeding_restores_the_identical_initial_state(seeded_wh, seeded_file, local_params, t):
    before = table_hashes(seeded_wh, t)
    seeded_wh.execute(f"DELETE FROM {t.upcg.sql} WHERE game_date < @d", {"d": TODAY})
    assert table_hashes(seeded_wh, t) != before
    backup = TableId(t.upcg.project, t.upcg.dataset, "upcg_backup_leftover")
    seeded_wh.copy_table(t.upcg, backup)
    seed_league(seeded_wh, t, TODAY)
    assert not seeded_wh.table_exists(backup)
    assert table_hashes(seeded_wh, t) == before


def test_seed_refuses_a_bigquery_warehouse_before_any_call(local_params):
    # An unreachable endpoint: any request would fail with a connection error, not ParamsError.
    client = client_for("http://127.0.0.1:9", "nba-props-staging")
    wh = BigQueryWarehouse("nba-props-staging", client=client)
    with pytest.raises(ParamsError, match="seeded only into a warehouse on this machine"):
        seed_league(wh, local_params.tables, TODAY)


def test_seed_command_refuses_a_non_local_environment(capsys):
    assert main(["seed", "--env", "staging"]) == 2
    assert "never Google's BigQuery" in capsys.readouterr().err


@pytest.fixture
def local_root(tmp_path, monkeypatch):
    """Point the params' relative warehouse_dir at tmp_path/outputs/local/warehouse."""
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    return load_params("local")


def test_seed_if_missing_leaves_a_seeded_warehouse_untouched(local_root, seeded_file, capsys):
    local_root.warehouse_path.mkdir(parents=True)
    target = local_root.warehouse_path / seeded_file.name
    target.write_bytes(seeded_file.read_bytes())
    wh = connect(local_root)
    wh.execute(f"DELETE FROM {local_root.tables.upcg.sql} WHERE game_date = '2023-02-23'")
    assert main(["seed", "--env", "local", "--if-missing"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert wh.row_count(local_root.tables.upcg, "game_date = '2023-02-23'") == 0


def test_seed_if_missing_seeds_a_warehouse_lacking_tables_and_describes_it(local_root, capsys):
    wh = connect(local_root)
    wh.create_dataset(local_root.datasets["analytics"])
    wh.create_table(local_root.tables.pgs, PGS)
    assert main(["seed", "--env", "local", "--if-missing", "--today", "2025-04-10"]) == 0
    out = capsys.readouterr().out
    assert "pgs_rows" in out and "2023-02-23" in out
    assert all(wh.table_exists(local_root.tables.id(s)) for s in ALL_TABLES)
    assert main(["describe", "--env", "local"]) == 0
    assert "upcoming_team_game_context" in capsys.readouterr().out


def test_seed_should_remove_the_old_warehouses_backfill_checkpoints(local_root, capsys):
    """A checkpoint of the replaced warehouse would let a resume skip dates that are empty now."""
    folder = paths.resolve(local_root.backfill.checkpoint_dir)
    folder.mkdir(parents=True)
    (folder / "player_composite_factors_2023-02-23_2023-02-24.json").write_text("{}")
    (folder / "unrelated.txt").write_text("kept")
    assert main(["seed", "--env", "local", "--today", "2025-04-10"]) == 0
    assert "1 backfill checkpoint(s) of the old warehouse removed" in capsys.readouterr().out
    assert [p.name for p in folder.iterdir()] == ["unrelated.txt"]
