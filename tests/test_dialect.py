"""The BigQuery -> DuckDB translation and its fixes (the contract suite proves the answers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib.warehouse import dialect
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


# -- translations kept across processes -------------------------------------------------------
SQL = "SELECT COUNTIF(x > 1) AS n FROM t WHERE d = @day"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of the test's own, and no translation of this process's memory."""
    folder = tmp_path / "backfill-runbook" / "duckdb-sql"  # as under XDG_CACHE_HOME=tmp_path
    monkeypatch.setattr(dialect, "CACHE_ROOT", folder)
    monkeypatch.setattr(dialect, "_checked", set())
    to_duckdb.cache_clear()
    yield folder
    to_duckdb.cache_clear()


def _entry(cache) -> Path:
    (entry,) = cache.glob("*/*.json")
    return entry


def test_a_translation_is_kept_and_read_back_by_another_process(cache):
    first = to_duckdb(SQL)
    assert json.loads(_entry(cache).read_text()) == {"sql": SQL, "duckdb": first}
    # What another process finds there is what it returns (here marked, to tell it was read).
    _entry(cache).write_text(json.dumps({"sql": SQL, "duckdb": ["SELECT 'kept'"]}))
    code = (
        "import json, sys; from runbook_lib.warehouse.dialect import to_duckdb; "
        "print(json.dumps(to_duckdb(sys.argv[1])))"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache.parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", code, SQL],
        cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout) == ["SELECT 'kept'"]


@pytest.mark.parametrize(
    "found",
    ["{not json", json.dumps({"sql": "SELECT 2", "duckdb": ["SELECT 2"]}), json.dumps([1, 2])],
)
def test_an_entry_that_does_not_hold_this_sqls_translation_is_made_again(cache, found):
    fresh = to_duckdb(SQL)
    _entry(cache).write_text(found)
    to_duckdb.cache_clear()
    assert to_duckdb(SQL) == fresh
    assert json.loads(_entry(cache).read_text()) == {"sql": SQL, "duckdb": fresh}


def test_a_cache_that_cannot_be_written_still_translates(cache):
    cache.parent.mkdir(parents=True)
    cache.write_text("a file where the folder would be")
    assert "COUNT(*) FILTER" in to_duckdb(SQL)[0]


def test_a_full_cache_folder_is_emptied_before_it_grows(cache, monkeypatch):
    monkeypatch.setattr(dialect, "MAX_KEPT", 2)
    for n in range(3):
        to_duckdb(f"SELECT {n}")
    monkeypatch.setattr(dialect, "_checked", set())  # a new process
    to_duckdb("SELECT 3")
    assert [json.loads(p.read_text())["sql"] for p in cache.glob("*/*.json")] == ["SELECT 3"]
