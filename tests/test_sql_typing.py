"""The BigQuery typing check (tests/sql_typing.py) catches what DuckDB and the emulator let through.

The statements of a whole run are typed by tests/test_notebooks.py; here the check itself is
shown to fail on each BigQuery-invalid form, and the SQL trace to record what it must.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from runbook_lib.platform import league_sql
from runbook_lib.run.params import load_params
from runbook_lib.warehouse.base import SQL_TRACE_ENV, parameter_types
from tests import sql_typing

TABLES = load_params("local").tables
MAPPING = sql_typing.schema_mapping(TABLES, sql_typing.declared_schemas())
PSZA, PCF = TABLES.psza.sql, TABLES.pcf.sql


def problems(sql: str, params: dict | None = None) -> list[str]:
    return sql_typing.problems(sql, parameter_types(params), MAPPING)


@pytest.mark.parametrize(
    "sql",
    [
        f"INSERT INTO {PSZA} (player_lookup, paint_rate_last_10) SELECT 'a', 1 / 3",
        f"INSERT INTO {PSZA} (player_lookup, paint_rate_last_10) VALUES ('a', 0.5 * 2)",
        f"UPDATE {PSZA} SET paint_rate_last_10 = SAFE_DIVIDE(1, 3) WHERE TRUE",
        f"MERGE {PSZA} AS t USING (SELECT 'a' AS p) AS s ON t.player_lookup = s.p "
        f"WHEN MATCHED THEN UPDATE SET paint_rate_last_10 = 2.5 / 1",
    ],
    ids=["insert-select", "insert-values", "update", "merge"],
)
def test_float64_written_into_numeric_without_a_cast_is_caught(sql):
    found = problems(sql)
    assert found and "FLOAT64 written into NUMERIC column paint_rate_last_10" in found[0]


def test_int64_into_numeric_and_a_cast_float64_are_accepted():
    assert not problems(
        f"INSERT INTO {PSZA} (games_in_sample, paint_rate_last_10) "
        f"SELECT 10, CAST(ROUND(1 / 3, 2) AS NUMERIC)"
    )
    assert not problems(f"INSERT INTO {PSZA} (paint_rate_last_10) SELECT 3")


def test_a_parameter_is_typed_as_the_bigquery_backend_sends_it():
    sql = f"INSERT INTO {PCF} (player_lookup, game_date) VALUES (@who, @day)"
    assert not problems(sql, {"who": "a", "day": dt.date(2023, 2, 23)})
    found = problems(sql, {"who": 1.5, "day": dt.date(2023, 2, 23)})
    assert found == ["FLOAT64 written into STRING column player_lookup without a CAST: @who"]


def test_a_column_no_declared_table_has_is_caught():
    found = problems(f"SELECT no_such_column FROM {PSZA}")
    assert found and "not in the declared schemas" in found[0]


def test_the_seeds_zone_statements_type_as_bigquery():
    # They wrote ROUND(FLOAT64) into NUMERIC columns, which BigQuery refuses.
    assert not problems(league_sql.psza_insert(TABLES))
    assert not problems(league_sql.tdza_insert(TABLES))


def test_the_trace_records_each_statement_its_parameter_types_and_sender(
    seeded_wh, local_params, tmp_path, monkeypatch
):
    from runbook_lib.platform import cleanup

    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv(SQL_TRACE_ENV, str(trace))
    cleanup.plan_cleanup(seeded_wh, local_params.tables, local_params.today, 7, 0.9, env="local")
    sent = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {item["sender"] for item in sent} == {"runbook_lib.platform.cleanup_plan"}
    assert {"cutoff": "DATE"} in [item["params"] for item in sent]
    assert not sql_typing.untyped_statements(sent, local_params.tables)


def test_untraced_sql_modules_names_a_module_whose_sql_was_never_sent():
    sent = [{"sql": "SELECT 1", "params": {}, "sender": "runbook_lib.platform.league"}]
    untraced = sql_typing.untraced_sql_modules(sent)
    assert "runbook_lib.platform.league_sql" not in untraced  # league imports and sends it
    assert "runbook_lib.platform.cleanup_plan" in untraced
