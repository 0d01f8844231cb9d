"""One contract, two backends: every case runs on DuckDB and on BigQuery (bqemulator).

SQL is written once in BigQuery Standard SQL; both backends must give BigQuery's answer.
Where the emulator cannot run a case, the case skips with a reason naming the gap.
"""

from __future__ import annotations

import datetime as dt
import decimal

import pandas as pd
import pytest

from runbook_lib.config import DEFAULT_DATASETS
from runbook_lib.errors import (
    DeleteContentMismatchError,
    DeleteCountMismatchError,
    InvalidIdentifierError,
    TableExistsError,
    TableNotFoundError,
)
from runbook_lib.platform.schema import ALL_TABLES, SCHEDULE, Tables
from runbook_lib.warehouse.ids import TableId

D = dt.date


FIRST_GAME = D(2023, 2, 20)


def schedule_rows(n: int, start: D = FIRST_GAME, season: int = 2022) -> pd.DataFrame:
    """Return n schedule rows, one game a day from `start`."""
    dates = [start + dt.timedelta(days=i) for i in range(n)]
    return pd.DataFrame(
        {
            "game_id": [f"g{i:03d}" for i in range(n)],
            "nba_game_id": [f"00{i:08d}" for i in range(n)],
            "game_date": pd.Series(dates, dtype="dbdate"),
            "season_year": [season] * n,
            "home_team_abbr": ["BOS"] * n,
            "away_team_abbr": ["LAL"] * n,
            "game_type": ["Regular Season"] * n,
        }
    )


def values(df: pd.DataFrame, column: str) -> list:
    """Return a column as plain Python values (None for NULL) whatever the backend's dtype."""
    return [None if pd.isna(v) else v for v in df[column].tolist()]


def skip_on_emulator(case, gap: str) -> None:
    """Skip on the BigQuery emulator, naming the emulator's gap (real BigQuery supports it)."""
    if case.backend == "bigquery":
        pytest.skip(f"bqemulator 1.4.0 gap: {gap}")


@pytest.fixture
def sched(warehouse):
    """The schedule table of the warehouse, holding 5 games on 2023-02-20 .. 2023-02-24."""
    table = warehouse.tables.id(SCHEDULE)
    warehouse.wh.load_dataframe(table, schedule_rows(5))
    return table


# -- queries and parameters ----------------------------------------------------------------------


def test_query_binds_named_parameters_of_each_type(warehouse):
    sql = """
        SELECT @d AS d, DATE_ADD(@d, INTERVAL 1 DAY) AS next_day, @ts AS ts, @b AS b, @i AS i,
               @f AS f, @s AS s, @n AS n, ARRAY_LENGTH(@ids) AS n_ids,
               (SELECT COUNT(*) FROM UNNEST(@ds) AS x WHERE x > @d) AS later_dates
    """
    params = {
        "d": D(2023, 2, 23),
        "ts": dt.datetime(2023, 2, 23, 4, 0, tzinfo=dt.UTC),
        "b": True,
        "i": 187,
        "f": 0.9,
        "s": "lebron_james",
        "n": decimal.Decimal("1.123456789"),
        "ids": ["a", "b", "c"],
        "ds": [D(2023, 2, 22), D(2023, 2, 24), D(2023, 2, 25)],
    }
    row = warehouse.wh.query(sql, params).iloc[0]
    assert row["d"] == D(2023, 2, 23)
    assert row["next_day"] == D(2023, 2, 24)
    assert pd.Timestamp(row["ts"]) == pd.Timestamp("2023-02-23T04:00:00Z")
    assert bool(row["b"]) is True
    assert int(row["i"]) == 187
    assert float(row["f"]) == pytest.approx(0.9)
    assert row["s"] == "lebron_james"
    assert float(row["n"]) == pytest.approx(1.123456789, abs=1e-12)
    assert int(row["n_ids"]) == 3
    assert int(row["later_dates"]) == 2


def test_in_unnest_of_a_list_parameter_filters_rows(warehouse, sched):
    df = warehouse.wh.query(
        f"SELECT game_id FROM {sched.sql} WHERE game_date IN UNNEST(@dates) ORDER BY game_id",
        {"dates": [D(2023, 2, 21), D(2023, 2, 23)]},
    )
    assert values(df, "game_id") == ["g001", "g003"]


def test_countif_over_no_rows_is_zero_as_in_bigquery(warehouse, sched):
    # DuckDB's COUNT_IF is NULL over no rows: a cleanup that empties a table (a first purge)
    # failed its verification on it.
    df = warehouse.wh.query(
        f"SELECT COUNTIF(game_date < @d) AS n, COUNT(*) AS rows FROM {sched.sql} WHERE FALSE",
        {"d": dt.date(2023, 2, 22)},
    )
    assert (int(df["n"].iloc[0]), int(df["rows"].iloc[0])) == (0, 0)


def test_date_columns_come_back_as_dbdate(warehouse, sched):
    df = warehouse.wh.query(
        f"SELECT game_date, DATE_SUB(game_date, INTERVAL 1 DAY) AS day_before FROM {sched.sql} "
        "ORDER BY game_date"
    )
    assert str(df["game_date"].dtype) == "dbdate"
    assert str(df["day_before"].dtype) == "dbdate"
    assert df["game_date"].iloc[0] == D(2023, 2, 20)


def test_query_on_a_missing_table_raises_table_not_found(warehouse):
    missing = warehouse.tables.id(SCHEDULE).with_table("no_such_table")
    with pytest.raises(TableNotFoundError):
        warehouse.wh.query(f"SELECT COUNT(*) AS n FROM {missing.sql}")


# -- DML -------------------------------------------------------------------------------------------


def test_dml_returns_the_number_of_affected_rows(warehouse, sched):
    wh = warehouse.wh
    assert (
        wh.execute(
            f"UPDATE {sched.sql} SET game_type = 'Playoffs' WHERE game_date >= @d",
            {"d": D(2023, 2, 23)},
        )
        == 2
    )
    assert wh.execute(f"DELETE FROM {sched.sql} WHERE game_id = @g", {"g": "g000"}) == 1
    inserted = wh.execute(
        f"INSERT INTO {sched.sql} (game_id, nba_game_id, game_date, season_year, home_team_abbr, "
        "away_team_abbr, game_type) VALUES ('x1', 'n1', @d, 2022, 'NYK', 'MIA', 'Regular Season'), "
        "('x2', 'n2', @d, 2022, 'MIA', 'NYK', 'Regular Season')",
        {"d": D(2023, 3, 1)},
    )
    assert inserted == 2
    assert wh.row_count(sched) == 6


def test_merge_updates_matches_and_inserts_the_rest(warehouse, sched):
    merged = warehouse.wh.execute(
        f"""
        MERGE {sched.sql} T
        USING (SELECT 'g001' AS game_id, 'Playoffs' AS game_type
               UNION ALL SELECT 'g999', 'Playoffs') S
        ON T.game_id = S.game_id
        WHEN MATCHED THEN UPDATE SET game_type = S.game_type
        WHEN NOT MATCHED THEN INSERT (game_id, nba_game_id, game_date, season_year,
            home_team_abbr, away_team_abbr, game_type)
          VALUES (S.game_id, 'n999', @d, 2022, 'DEN', 'PHX', S.game_type)
        """,
        {"d": D(2023, 3, 2)},
    )
    assert merged == 2
    df = warehouse.wh.query(
        f"SELECT game_id FROM {sched.sql} WHERE game_type = 'Playoffs' ORDER BY game_id"
    )
    assert values(df, "game_id") == ["g001", "g999"]
    assert warehouse.wh.row_count(sched) == 6


# -- datasets, tables, loads, copies -----------------------------------------------------------------


def test_every_declared_table_is_created_from_its_schema(warehouse):
    wh = warehouse.wh
    fresh = Tables(wh.project, {k: f"{v}_fresh" for k, v in DEFAULT_DATASETS.items()})
    assert not wh.dataset_exists("nba_analytics_fresh")
    created = [wh.ensure_table(fresh.id(schema), schema) for schema in ALL_TABLES]
    assert created == [True] * len(ALL_TABLES)
    assert [wh.ensure_table(fresh.id(schema), schema) for schema in ALL_TABLES] == [False] * len(
        ALL_TABLES
    )
    for key, dataset in fresh.datasets.items():
        expected = sorted(s.name for s in ALL_TABLES if s.dataset_key == key)
        assert wh.list_tables(dataset) == expected
    for schema in ALL_TABLES:
        df = wh.query(f"SELECT * FROM {fresh.id(schema).sql} LIMIT 0")
        assert list(df.columns) == schema.columns


def test_create_table_refuses_an_existing_table(warehouse):
    with pytest.raises(TableExistsError):
        warehouse.wh.create_table(warehouse.tables.id(SCHEDULE), SCHEDULE)


def test_existence_checks_follow_create_and_drop(warehouse, sched):
    wh = warehouse.wh
    other = sched.with_table("not_created")
    assert wh.table_exists(sched) and not wh.table_exists(other)
    assert wh.dataset_exists(sched.dataset) and not wh.dataset_exists("no_such_dataset")
    assert wh.list_tables("no_such_dataset") == []
    wh.drop_table(sched)
    wh.drop_table(sched)  # dropping a missing table is a no-op
    assert not wh.table_exists(sched)


def test_load_dataframe_appends_rows_with_their_values(warehouse, sched):
    wh = warehouse.wh
    assert wh.load_dataframe(sched, schedule_rows(2, start=D(2023, 3, 1), season=2023)) == 2
    assert wh.row_count(sched) == 7
    df = wh.query(
        f"SELECT game_date, season_year FROM {sched.sql} WHERE season_year = @s ORDER BY game_date",
        {"s": 2023},
    )
    assert values(df, "game_date") == [D(2023, 3, 1), D(2023, 3, 2)]


def test_load_dataframe_into_a_missing_table_raises_table_not_found(warehouse):
    missing = warehouse.tables.id(SCHEDULE).with_table("no_such_table")
    with pytest.raises(TableNotFoundError):
        warehouse.wh.load_dataframe(missing, schedule_rows(1))


def test_copy_refuses_an_existing_destination_and_keeps_it(warehouse, sched):
    wh = warehouse.wh
    backup = sched.with_table("nba_schedule_backup")
    assert wh.copy_table(sched, backup) == 5
    wh.execute(f"DELETE FROM {sched.sql} WHERE game_id = 'g000'")
    with pytest.raises(TableExistsError):
        wh.copy_table(sched, backup)
    assert wh.row_count(backup) == 5


def test_copy_with_overwrite_replaces_the_destination(warehouse, sched):
    wh = warehouse.wh
    backup = sched.with_table("nba_schedule_backup")
    wh.copy_table(sched, backup)
    wh.execute(f"DELETE FROM {sched.sql} WHERE game_date <= @d", {"d": D(2023, 2, 21)})
    assert wh.copy_table(sched, backup, overwrite=True) == 3
    df = wh.query(f"SELECT game_id FROM {backup.sql} ORDER BY game_id")
    assert values(df, "game_id") == ["g002", "g003", "g004"]


def test_copy_of_a_missing_source_raises_table_not_found(warehouse):
    src = warehouse.tables.id(SCHEDULE).with_table("no_such_table")
    with pytest.raises(TableNotFoundError):
        warehouse.wh.copy_table(src, src.with_table("its_backup"))


def test_row_count_applies_the_predicate_and_its_parameters(warehouse, sched):
    wh = warehouse.wh
    assert wh.row_count(sched) == 5
    assert wh.row_count(sched, "game_date < @d", {"d": D(2023, 2, 22)}) == 2
    assert wh.row_count(sched, "FALSE") == 0


# -- the guarded delete ------------------------------------------------------------------------------


def test_delete_exact_commits_when_the_count_matches(warehouse, sched):
    wh = warehouse.wh
    assert wh.delete_exact(sched, "game_date < @d", {"d": D(2023, 2, 23)}, expected_rows=3) == 3
    assert wh.row_count(sched) == 2


@pytest.mark.parametrize("expected_rows", [2, 4, 0])
def test_delete_exact_deletes_nothing_when_the_count_differs(warehouse, sched, expected_rows):
    wh = warehouse.wh
    with pytest.raises(DeleteCountMismatchError) as err:
        wh.delete_exact(sched, "game_date < @d", {"d": D(2023, 2, 23)}, expected_rows)
    assert (err.value.expected_rows, err.value.actual_rows) == (expected_rows, 3)
    assert wh.row_count(sched) == 5


KEY = ("game_id", "game_date")
EARLY = {"d": D(2023, 2, 23)}


def test_rows_digest_changes_when_one_row_is_swapped_for_another(warehouse, sched):
    wh = warehouse.wh
    before = wh.rows_digest(sched, KEY, "game_date < @d", EARLY)
    assert before.rows == 3 and before == wh.rows_digest(sched, KEY, "game_date < @d", EARLY)
    wh.execute(f"UPDATE {sched.sql} SET game_id = 'swapped' WHERE game_id = 'g001'")
    after = wh.rows_digest(sched, KEY, "game_date < @d", EARLY)
    assert after.rows == 3 and (after.xor, after.low_sum) != (before.xor, before.low_sum)


def test_rows_digest_of_no_rows_is_zero(warehouse, sched):
    digest = warehouse.wh.rows_digest(sched, KEY, "FALSE")
    assert (digest.rows, digest.xor, digest.low_sum) == (0, 0, 0)


def test_delete_exact_with_a_digest_commits_when_the_rows_are_the_planned_ones(warehouse, sched):
    wh = warehouse.wh
    digest = wh.rows_digest(sched, KEY, "game_date < @d", EARLY)
    assert wh.delete_exact(sched, "game_date < @d", EARLY, 3, digest) == 3
    assert wh.row_count(sched) == 2


def test_delete_exact_deletes_nothing_when_a_row_was_swapped_at_the_same_count(warehouse, sched):
    wh = warehouse.wh
    digest = wh.rows_digest(sched, KEY, "game_date < @d", EARLY)
    # One planned row leaves the stale set, another enters it: the count stays 3.
    wh.execute(f"DELETE FROM {sched.sql} WHERE game_id = 'g000'")
    wh.execute(f"UPDATE {sched.sql} SET game_date = DATE '2023-02-19' WHERE game_id = 'g004'")
    with pytest.raises(DeleteContentMismatchError) as err:
        wh.delete_exact(sched, "game_date < @d", EARLY, 3, digest)
    assert "not the planned rows" in str(err.value)
    assert wh.row_count(sched) == 4


def test_delete_exact_refuses_an_empty_predicate(warehouse, sched):
    with pytest.raises(ValueError):
        warehouse.wh.delete_exact(sched, "  ", None, expected_rows=5)
    assert warehouse.wh.row_count(sched) == 5


# -- identifiers ------------------------------------------------------------------------------------

INJECTION = "x`; DELETE FROM y --"


def test_an_injected_table_name_is_refused_and_nothing_changes(warehouse, sched):
    with pytest.raises(InvalidIdentifierError):
        TableId(warehouse.wh.project, sched.dataset, INJECTION)
    with pytest.raises(InvalidIdentifierError):
        sched.with_table(INJECTION)
    with pytest.raises(InvalidIdentifierError):
        Tables(warehouse.wh.project, {**DEFAULT_DATASETS, "reference": INJECTION})
    for call in (
        warehouse.wh.create_dataset,
        warehouse.wh.list_tables,
        warehouse.wh.dataset_exists,
    ):
        with pytest.raises(InvalidIdentifierError):
            call(INJECTION)
    assert warehouse.wh.row_count(sched) == 5
    assert warehouse.wh.list_tables(sched.dataset) == ["nba_schedule"]


# -- dialect: BigQuery's answers on both backends ------------------------------------------------------

DIALECT_CASES = {
    # name: (BigQuery SQL returning one row with column v, BigQuery's answer)
    "dayofweek_of_a_sunday_is_1": ("SELECT EXTRACT(DAYOFWEEK FROM DATE '2023-02-26') AS v", 1),
    "dayofweek_of_a_saturday_is_7": ("SELECT EXTRACT(DAYOFWEEK FROM DATE '2023-02-25') AS v", 7),
    "date_sub_on_a_date_is_a_date": (
        "SELECT DATE_SUB(DATE '2023-03-01', INTERVAL 1 DAY) AS v",
        D(2023, 2, 28),
    ),
    "date_add_on_a_date_is_a_date": (
        "SELECT DATE_ADD(DATE '2023-02-28', INTERVAL 1 DAY) AS v",
        D(2023, 3, 1),
    ),
    "date_trunc_on_a_date_is_a_date": (
        "SELECT DATE_TRUNC(DATE '2023-02-23', MONTH) AS v",
        D(2023, 2, 1),
    ),
    "date_of_a_timestamp_is_its_utc_date": (
        "SELECT DATE(TIMESTAMP '2023-02-24 03:30:00+00') AS v",
        D(2023, 2, 24),
    ),
    "date_diff_counts_days": (
        "SELECT DATE_DIFF(DATE '2023-03-01', DATE '2023-02-23', DAY) AS v",
        6,
    ),
    "safe_divide_by_zero_is_null": ("SELECT SAFE_DIVIDE(1, 0) AS v", None),
    "safe_divide_divides": ("SELECT SAFE_DIVIDE(187, 200) AS v", 0.935),
    "integer_slash_is_float_division": ("SELECT 7 / 2 AS v", 3.5),
    "cast_float_to_int64_rounds_half_away_from_zero": (
        "SELECT CAST(2.5 AS INT64) + CAST(-2.5 AS INT64) * 10 AS v",
        3 - 30,
    ),
    "numeric_literal_keeps_9_decimal_digits": ("SELECT NUMERIC '1.123456789' AS v", 1.123456789),
    "numeric_division_keeps_9_decimal_digits": (
        "SELECT ROUND(NUMERIC '1' / 3, 9) AS v",
        0.333333333,
    ),
    "generate_date_array_unnests_to_dates": (
        "SELECT ARRAY_AGG(d ORDER BY d)[OFFSET(3)] AS v "
        "FROM UNNEST(GENERATE_DATE_ARRAY(DATE '2023-02-27', DATE '2023-03-02')) AS d",
        D(2023, 3, 2),
    ),
    "countif_and_logical_or_aggregate": (
        "SELECT COUNTIF(x > 1) + IF(LOGICAL_OR(x > 2), 100, 0) AS v FROM UNNEST([1, 2, 3]) AS x",
        102,
    ),
}


EMULATOR_GAPS = {
    "cast_float_to_int64_rounds_half_away_from_zero": "CAST(FLOAT64 AS INT64) rounds half to "
    "even (2.5 -> 2); BigQuery rounds half away from zero (2.5 -> 3)",
}


@pytest.mark.parametrize("name", sorted(DIALECT_CASES))
def test_dialect_gives_bigquery_answers(warehouse, name):
    sql, expected = DIALECT_CASES[name]
    if name in EMULATOR_GAPS:
        skip_on_emulator(warehouse, EMULATOR_GAPS[name])
    got = values(warehouse.wh.query(sql), "v")[0]
    if isinstance(expected, D):
        assert got == expected and not isinstance(got, dt.datetime)
    elif isinstance(expected, float):
        assert float(got) == pytest.approx(expected, abs=1e-12)
    else:
        assert got == expected


def test_numeric_cast_from_a_string_keeps_9_decimal_digits(warehouse):
    skip_on_emulator(
        warehouse, "CAST(... AS NUMERIC) yields DECIMAL(18,3), so 1.123456789 -> 1.123"
    )
    got = warehouse.wh.query("SELECT CAST(@s AS NUMERIC) AS v", {"s": "1.123456789"})["v"][0]
    assert float(got) == pytest.approx(1.123456789, abs=1e-12)


def test_numeric_columns_store_9_decimal_digits(warehouse):
    wh, t = warehouse.wh, warehouse.tables
    from runbook_lib.platform.schema import BACKFILL_METADATA, PSZA

    table = t.id(PSZA)
    frame = pd.DataFrame(
        {
            "player_lookup": ["a"],
            "analysis_date": pd.Series([D(2023, 2, 23)], dtype="dbdate"),
            "paint_rate_last_10": [decimal.Decimal("0.123456789")],
        }
    )
    assert BACKFILL_METADATA.name  # the metadata table exists too; PSZA holds NUMERICs
    wh.load_dataframe(table, frame)
    df = wh.query(
        f"SELECT paint_rate_last_10 * 1000000000 AS scaled, paint_rate_last_10 AS v FROM {table.sql}"
    )
    assert float(df["scaled"][0]) == pytest.approx(123456789, abs=1e-3)


def test_count_distinct_counts_each_value_once(warehouse, sched):
    wh = warehouse.wh
    wh.load_dataframe(sched, schedule_rows(3))  # the same three game ids again
    df = wh.query(
        f"SELECT COUNT(DISTINCT game_id) AS games, COUNT(*) AS game_rows FROM {sched.sql}"
    )
    assert (int(df["games"][0]), int(df["game_rows"][0])) == (5, 8)
