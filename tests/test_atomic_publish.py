"""A date's PCF rows and its metadata row land together or not at all (issue 10.3).

The MERGE into PCF and the metadata rows are one transaction (`Warehouse.transaction`): a
DuckDB transaction on local, a session's multi-statement transaction on BigQuery.
"""

from __future__ import annotations

import pytest

from runbook_lib.errors import CoverageValidationError, WarehouseError
from runbook_lib.platform.schema import BACKFILL_METADATA
from runbook_lib.run.backfill_steps import run_backfill
from runbook_lib.warehouse.schema import TableSchema, fields_of
from tests.test_backfill import D1, make_league, metadata, pcf_counts
from tests.test_crashes import root, runbook, tables_of, wait_until_gone  # noqa: F401 - fixture

# The original tracker script's metadata table (original-system.md 4.5): 8 columns, not 12.
ORIGINAL_METADATA = TableSchema(
    "orchestration",
    BACKFILL_METADATA.name,
    fields_of("""
        analysis_date DATE REQUIRED, expected_players INT64 REQUIRED,
        actual_players INT64 REQUIRED, coverage_pct FLOAT64 REQUIRED, data_source STRING,
        last_created_at TIMESTAMP, status STRING REQUIRED, tracked_at TIMESTAMP REQUIRED"""),
)
INCIDENT_EVE = "2023-02-25"  # a complete date of the seeded league


def _insert(wh, tables, value: str) -> None:
    wh.execute(
        f"INSERT INTO {tables.backfill_metadata.sql} "
        "(analysis_date, expected_players, actual_players, coverage_pct, status, tracked_at) "
        "VALUES (DATE '2023-02-20', 1, 1, 100.0, @status, CURRENT_TIMESTAMP())",
        {"status": value},
    )


def test_a_transaction_commits_every_statement_or_none(empty_wh, local_params):
    """Statements of a block that raises are all rolled back; those of one that ends all land."""
    wh, t = empty_wh, local_params.tables
    with pytest.raises(RuntimeError), wh.transaction():
        _insert(wh, t, "FIRST")
        _insert(wh, t, "SECOND")
        raise RuntimeError("killed between two statements")
    assert wh.row_count(t.backfill_metadata) == 0
    with wh.transaction():
        _insert(wh, t, "FIRST")
        _insert(wh, t, "SECOND")
    assert wh.row_count(t.backfill_metadata) == 2


def test_a_failed_statement_rolls_back_the_ones_before_it(empty_wh, local_params):
    wh, t = empty_wh, local_params.tables
    with pytest.raises(WarehouseError), wh.transaction():
        _insert(wh, t, "FIRST")
        wh.execute(f"SELECT * FROM {t.backfill_metadata.sql.replace('metadata', 'nosuch')}")
    assert wh.row_count(t.backfill_metadata) == 0


def test_on_the_emulator_a_transaction_says_by_name_that_it_is_none(bq_wh, caplog):
    """bqemulator runs a session's BEGIN TRANSACTION on its one shared connection: the
    statements run one by one there, and a WARNING names the gap."""
    from runbook_lib.config import DEFAULT_DATASETS
    from runbook_lib.platform.schema import Tables

    t = Tables(bq_wh.project, DEFAULT_DATASETS)
    bq_wh.ensure_table(t.backfill_metadata, BACKFILL_METADATA)
    with caplog.at_level("WARNING"), pytest.raises(RuntimeError), bq_wh.transaction():
        _insert(bq_wh, t, "FIRST")
        raise RuntimeError("after one statement")
    assert "bqemulator has no per-session transactions" in caplog.text
    assert bq_wh.row_count(t.backfill_metadata) == 1


def test_the_original_8_column_metadata_table_publishes_nothing(empty_wh, local_params):
    """The production table lacks run_id and 3 more columns: the date FAILS and PCF stays empty
    (before, the MERGE had already written the date's PCF rows)."""
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20})
    empty_wh.drop_table(t.backfill_metadata)
    empty_wh.create_table(t.backfill_metadata, ORIGINAL_METADATA)
    with pytest.raises(CoverageValidationError) as caught:
        run_backfill(empty_wh, local_params, D1, D1)
    assert str(D1) in caught.value.failed
    assert pcf_counts(empty_wh, t) == {}
    assert empty_wh.row_count(t.backfill_metadata) == 0


def test_a_backfill_killed_between_pcf_and_metadata_leaves_neither(root):  # noqa: F811
    """SIGKILL after the MERGE, before the metadata rows: the process dies inside the
    transaction, and the warehouse holds no PCF row and no metadata row of the date."""
    fault = "backfill.after_merge"
    args = ("backfill", "--env", "local", "--start-date", INCIDENT_EVE, "--end-date", INCIDENT_EVE)
    killed = runbook(root, *args, fault=fault)
    wait_until_gone(fault, root)
    assert killed.returncode == -9, killed.stderr[-2000:]
    wh, tables = tables_of(root)
    day = {"day": INCIDENT_EVE}
    assert wh.row_count(tables.pcf, "game_date = CAST(@day AS DATE)", day) == 0
    assert wh.row_count(tables.backfill_metadata, "analysis_date = CAST(@day AS DATE)", day) == 0
    # The same backfill, not killed, publishes both.
    again = runbook(root, *args, "--break-stale-lock")
    assert again.returncode == 0, again.stderr[-2000:]
    assert wh.row_count(tables.pcf, "game_date = CAST(@day AS DATE)", day) == 180
    rows = metadata(wh, tables)
    assert list(rows["status"]) == ["COMPLETE"]
