"""The BigQuery -> DuckDB translation and its fixes (the contract suite proves the answers)."""

from __future__ import annotations

import pytest

from runbook_lib.warehouse.dialect import duckdb_type, to_duckdb


def test_dayofweek_is_shifted_to_bigquery_numbering():
    (sql,) = to_duckdb("SELECT EXTRACT(DAYOFWEEK FROM d) AS v FROM t")
    assert "+ 1" in sql


@pytest.mark.parametrize(
    "expr",
    ["DATE_SUB(d, INTERVAL 1 DAY)", "DATE_ADD(d, INTERVAL 1 DAY)", "DATE_TRUNC(d, MONTH)"],
)
def test_date_arithmetic_is_cast_back_to_date(expr):
    (sql,) = to_duckdb(f"SELECT {expr} AS v FROM t")
    assert sql.startswith("SELECT CAST(") and sql.endswith("AS DATE) AS v FROM t")


def test_an_already_cast_date_expression_is_not_cast_twice():
    (sql,) = to_duckdb("SELECT CAST(DATE_SUB(d, INTERVAL 1 DAY) AS DATE) AS v FROM t")
    assert sql.count("AS DATE)") == 1


def test_numeric_gets_bigquery_precision_and_scale():
    (sql,) = to_duckdb("SELECT CAST(x AS NUMERIC) AS v FROM t")
    assert "DECIMAL(38, 9)" in sql


def test_named_parameters_become_duckdb_named_parameters():
    (sql,) = to_duckdb("SELECT * FROM t WHERE d = @day AND x IN UNNEST(@xs)")
    assert "$day" in sql and "$xs" in sql and "@" not in sql


def test_a_backquoted_table_reference_maps_to_catalog_schema_table():
    (sql,) = to_duckdb("SELECT * FROM `nba-props-platform.nba_analytics.player_game_summary`")
    assert '"nba-props-platform"."nba_analytics"."player_game_summary"' in sql


def test_several_statements_translate_to_several_statements():
    assert len(to_duckdb("SELECT 1; SELECT 2")) == 2


def test_declared_types_map_to_duckdb_types():
    assert duckdb_type("NUMERIC") == "DECIMAL(38, 9)"
    assert duckdb_type("TIMESTAMP") == "TIMESTAMPTZ"
    with pytest.raises(KeyError):
        duckdb_type("GEOGRAPHY")
