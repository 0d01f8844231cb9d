"""Rollback of cleanups on both backends: all or nothing, exactly the deleted rows put back."""

from __future__ import annotations

import datetime as dt

import pytest

from runbook_lib.errors import BackupMissingError
from runbook_lib.platform import cleanup
from runbook_lib.platform.cleanup_restore import BackupToRestore, restore_backups
from runbook_lib.run.journal import Journal, read, summarize
from tests.test_cleanup import CUTOFF, TODAY, days, upcg_rows, utcg_rows

KEY = {
    "upcoming_player_game_context": ["player_lookup", "game_id"],
    "upcoming_team_game_context": ["team_abbr", "game_id"],
}


@pytest.fixture
def case(warehouse):
    """Both upcoming tables with stale and kept rows, on DuckDB and on bqemulator."""
    wh, tables = warehouse.wh, warehouse.tables
    wh.load_dataframe(tables.upcg, upcg_rows(days(dt.date(2025, 3, 31), 11)))  # 3 stale
    wh.load_dataframe(tables.utcg, utcg_rows(days(dt.date(2025, 4, 1), 7)))  # 2 stale
    return warehouse


def content(wh, table) -> list[tuple]:
    """Return a table's rows (key and date) sorted: the content check."""
    cols = KEY[table.table]
    df = wh.query(f"SELECT {', '.join(cols)}, game_date FROM {table.sql}")  # noqa: S608
    return sorted(tuple(str(v) for v in row) for row in df.itertuples(index=False))


def clean(case, suffix: str, tmp_path) -> tuple[cleanup.CleanupResult, list[dict]]:
    """Apply the plan with a journal; return the result and the journal's entries."""
    plan = cleanup.plan_cleanup(case.wh, case.tables, TODAY, 7, 0.9, env="local")
    journal = Journal(tmp_path / f"{suffix}.jsonl")
    result = cleanup.apply_cleanup(
        case.wh,
        case.tables,
        plan,
        confirm=list(plan.tokens.values()),
        run_id=suffix,
        journal=journal,
    )
    return result, read(journal.path)


def to_restore(result: cleanup.CleanupResult, source: str = "") -> list[BackupToRestore]:
    return [
        BackupToRestore(t.table, t.backup_table, t.backup_rows, CUTOFF, t.deleted, source)
        for t in result.tables
        if t.backup_table
    ]


def test_cleanup_should_journal_its_intent_before_the_first_backup_then_each_outcome(
    case, tmp_path
):
    """Intent (tables, backup names, counts, cutoff) first; backups, then deletes, then done."""
    result, entries = clean(case, "r1_a1", tmp_path)
    assert [e["event"] for e in entries] == [
        "intent",
        "backup",
        "backup",
        "deleting",
        "deleted",
        "deleting",
        "deleted",
        "done",
    ]
    intent = entries[0]
    assert intent["cutoff"] == CUTOFF.isoformat() and intent["predicate"] == cleanup.STALE
    assert {t["table"]: (t["backup"], t["stale_rows"]) for t in intent["tables"]} == {
        str(t.table): (str(t.backup_table), t.previewed) for t in result.tables
    }
    summary = summarize(entries)
    assert summary["rows_deleted"] == result.total_deleted == 5 and summary["unknown"] == []
    assert [b["backup_rows"] for b in summary["backups"]] == [11, 7]


def test_rollback_should_put_back_exactly_the_deleted_rows_and_keep_rows_written_since(
    case, tmp_path
):
    """Re-insert, not overwrite: a row written after the cleanup survives; a second run adds 0."""
    wh, tables = case.wh, case.tables
    before = {t: content(wh, t) for t in (tables.upcg, tables.utcg)}
    result, _ = clean(case, "r1_a1", tmp_path)
    wh.load_dataframe(tables.upcg, upcg_rows([dt.date(2025, 4, 9)], tag="new"))
    log = Journal(tmp_path / "restore.jsonl")
    restored = restore_backups(wh, to_restore(result), journal=log)
    assert [e["event"] for e in read(log.path)] == ["restoring", "restored"] * 2
    assert summarize(read(log.path))["restored"] == {str(r.item.backup): r.rows for r in restored}
    assert {str(r.item.table): r.rows for r in restored} == {
        str(tables.upcg): 3,
        str(tables.utcg): 2,
    }
    assert all(r.verified for r in restored)
    assert content(wh, tables.utcg) == before[tables.utcg]
    assert content(wh, tables.upcg) == sorted(before[tables.upcg] + [("new0", "g0", "2025-04-09")])
    again = restore_backups(wh, to_restore(result))
    assert [r.rows for r in again] == [0, 0] and wh.row_count(tables.upcg) == 12


def test_rollback_with_one_backup_missing_or_short_should_change_nothing(case, tmp_path):
    """Every backup is checked before the first insert: no table is half restored."""
    wh, tables = case.wh, case.tables
    result, _ = clean(case, "r1_a1", tmp_path)
    after = {t: content(wh, t) for t in (tables.upcg, tables.utcg)}
    items = to_restore(result)
    wh.drop_table(items[1].backup)  # the second table's backup: the first would go first
    with pytest.raises(BackupMissingError) as caught:
        restore_backups(wh, items)
    assert caught.value.backup == str(items[1].backup) and caught.value.actual_rows is None
    assert {t: content(wh, t) for t in after} == after
    wh.execute(f"DELETE FROM {items[0].backup.sql} WHERE game_id = 'g10'")  # noqa: S608
    with pytest.raises(BackupMissingError, match="holds 10 rows .recorded with 11 rows."):
        restore_backups(wh, items[:1])
    assert {t: content(wh, t) for t in after} == after


def test_rollback_over_two_attempts_should_give_each_backup_its_own_deleted_rows(case, tmp_path):
    """Attempt 1 backed up and died before deleting; attempt 2 deleted: 5 rows back, once."""
    wh, tables = case.wh, case.tables
    before = {t: content(wh, t) for t in (tables.upcg, tables.utcg)}
    for t in (tables.upcg, tables.utcg):  # attempt 1's backups, made before it was killed
        cleanup.verified_backup(wh, t, cleanup.backup_id(t, "r1_a1"))
    first = [
        BackupToRestore(t, cleanup.backup_id(t, "r1_a1"), wh.row_count(t), CUTOFF, 0, "attempt 1")
        for t in (tables.upcg, tables.utcg)
    ]
    result, _ = clean(case, "r1_a2", tmp_path)
    restored = restore_backups(wh, first + to_restore(result, "attempt 2"))
    assert [(r.item.source, r.rows) for r in restored] == [
        ("attempt 2", 2),
        ("attempt 2", 3),
        ("attempt 1", 0),
        ("attempt 1", 0),
    ]
    assert {t: content(wh, t) for t in before} == before


def test_overwrite_should_replace_each_table_by_its_earliest_backup(case, tmp_path):
    """--overwrite: the table becomes its backup; a row written since is gone."""
    wh, tables = case.wh, case.tables
    before = content(wh, tables.upcg)
    result, _ = clean(case, "r1_a1", tmp_path)
    wh.load_dataframe(tables.upcg, upcg_rows([dt.date(2025, 4, 9)], tag="new"))
    restored = restore_backups(wh, to_restore(result), overwrite=True)
    assert [r.how for r in restored] == ["overwrite", "overwrite"] and all(
        r.verified for r in restored
    )
    assert content(wh, tables.upcg) == before


def test_a_second_cleanup_in_one_run_names_its_backups_by_attempt(case, tmp_path):
    """Backups are named by run and attempt, so attempt 2 never meets attempt 1's backup."""
    wh = case.wh
    result, _ = clean(case, "r1_a1", tmp_path)
    restore_backups(wh, to_restore(result))
    second, _ = clean(case, "r1_a2", tmp_path)
    assert second.total_deleted == 5
    assert {t.backup_table.table for t in second.tables} == {
        "upcoming_player_game_context_backup_r1_a2",
        "upcoming_team_game_context_backup_r1_a2",
    }
