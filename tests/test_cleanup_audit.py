"""The cleanup's audit row is an intent before the delete and completed after it (issue 10.3)."""

from __future__ import annotations

import json

import pytest

from runbook_lib.errors import WarehouseError
from runbook_lib.platform import cleanup
from runbook_lib.platform.schema import CLEANUP_OPERATIONS
from runbook_lib.warehouse.schema import TableSchema, fields_of
from tests.test_cleanup import all_backups, audit_rows, counts, plan_of, tables, wh  # noqa: F401
from tests.test_crashes import UPCG_STALE, UTCG_STALE, _crash, root, tables_of  # noqa: F401

# The 6-column table the original README asks for (original-system.md 3.4, inconsistency 4).
README_AUDIT = TableSchema(
    "orchestration",
    CLEANUP_OPERATIONS.name,
    fields_of("""
        cleanup_type STRING, cleanup_time TIMESTAMP, ttl_days INT64, tables_cleaned STRING,
        total_records_deleted INT64, errors STRING"""),
)


def test_the_audit_row_says_started_before_the_first_backup_and_success_after(wh, tables):  # noqa: F811
    plan = plan_of(wh, tables)
    seen = []

    def journal(entry: dict) -> None:
        if not seen:  # the intent, before the first backup
            seen.append(audit_rows(wh, tables).to_dict("records"))

    cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="a1", journal=journal)
    [[intent]] = seen
    assert (intent["status"], intent["total_records_deleted"], intent["run_id"]) == (
        "started",
        0,
        "a1",
    )
    planned = {
        e["table_name"]: e["records_previewed"] for e in json.loads(intent["tables_cleaned"])
    }
    assert sum(planned.values()) == 5
    [done] = audit_rows(wh, tables).to_dict("records")  # the same row, completed
    assert (done["status"], done["total_records_deleted"]) == ("success", 5)
    assert len(json.loads(done["backups"])) == 2


def test_an_audit_table_the_row_does_not_fit_refuses_before_any_change(wh, tables):  # noqa: F811
    """The README's 6-column table: before, the row failed after the delete; now the intent
    fails first, and nothing is backed up or deleted."""
    wh.drop_table(tables.cleanup_operations)
    wh.create_table(tables.cleanup_operations, README_AUDIT)
    before = counts(wh, tables)
    plan = plan_of(wh, tables)
    with pytest.raises(WarehouseError, match="has no column"):
        cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="a2")
    assert counts(wh, tables) == before and all_backups(wh, tables) == []


def test_a_cleanup_killed_after_its_delete_leaves_its_audit_row_started(root):  # noqa: F811
    """SIGKILL between the delete and the audit's completion: the row says 'started' with the
    planned rows, so the delete is on record."""
    _crash(root, "cleanup.after_delete", "kernel")
    wh_, tables_ = tables_of(root)
    [row] = audit_rows(wh_, tables_).to_dict("records")
    assert row["status"] == "started" and row["trigger"] == "runbook"
    planned = sorted(e["records_previewed"] for e in json.loads(row["tables_cleaned"]))
    assert planned == [UTCG_STALE, UPCG_STALE]
