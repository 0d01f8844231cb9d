"""The embedded warehouse's copies behave like BigQuery copy jobs: same schema, by name."""

from __future__ import annotations

import pytest

from runbook_lib.errors import WarehouseError


def test_backup_should_keep_the_sources_not_null_columns(empty_wh, local_params):
    upcg = local_params.tables.upcg
    backup = upcg.with_table("upcg_backup_x")
    empty_wh.copy_table(upcg, backup)
    with pytest.raises(WarehouseError):
        empty_wh.execute(f"INSERT INTO {backup.sql} (player_lookup) VALUES (NULL)")


def test_restore_should_match_columns_by_name_not_position(empty_wh, local_params):
    upcg = local_params.tables.upcg
    backup = upcg.with_table("upcg_reordered")
    empty_wh.execute(
        f"CREATE TABLE {backup.sql} AS SELECT 'ok' AS team_abbr, 'p1' AS player_lookup, "
        "'g1' AS game_id, DATE '2025-04-01' AS game_date, 'opp' AS opponent_team_abbr"
    )
    assert empty_wh.copy_table(backup, upcg, overwrite=True) == 1
    row = empty_wh.query(f"SELECT player_lookup, team_abbr FROM {upcg.sql}").iloc[0]
    assert (row["player_lookup"], row["team_abbr"]) == ("p1", "ok")


def test_a_parameter_should_reach_only_statements_that_name_it(empty_wh):
    # $date is a prefix of $dates: the statement using only $dates must not receive $date.
    got = empty_wh.query(
        "SELECT COUNT(*) AS n FROM UNNEST(@dates) AS d WHERE d >= @date",
        {"dates": ["2025-01-01", "2025-01-02"], "date": "2025-01-02"},
    )
    assert int(got["n"].iloc[0]) == 1
    got = empty_wh.query("SELECT ARRAY_LENGTH(@dates) AS n", {"dates": [1, 2, 3], "date": 5})
    assert int(got["n"].iloc[0]) == 3


def test_a_library_function_should_open_the_file_once_for_all_its_statements(
    empty_wh, local_params, monkeypatch
):
    # Opening the file creates a DuckDB instance (30-45 ms); one_connection holds one for the
    # whole call, so its statements share it, and it is closed again when the call returns.
    from runbook_lib.platform.schema_check import compare
    from runbook_lib.warehouse.duckdb_backend import DuckDBWarehouse

    opened = []
    real_open = DuckDBWarehouse._open
    monkeypatch.setattr(DuckDBWarehouse, "_open", lambda self: opened.append(1) or real_open(self))
    assert compare(empty_wh, local_params.tables) == []
    assert len(opened) == 1
    assert getattr(empty_wh._local, "con", None) is None  # released: another process may open it
    compare.__wrapped__(empty_wh, local_params.tables)  # the same work without the decorator
    assert len(opened) > 2
