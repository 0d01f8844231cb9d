"""Undo cleanups, all or nothing: check every backup first, then re-insert exactly the deleted rows.

A cleanup's backup is a full copy of the table taken just before its delete. The rows that
delete removed are the backup's rows matching the delete predicate (`game_date < cutoff`); the
default restore inserts those of them whose key (TableSchema.key) the live table no longer
holds, in one INSERT ... SELECT per backup, so rows written since the cleanup survive and a
second rollback inserts nothing. `overwrite=True` replaces the table with its backup instead
(as `runbook restore` does). Before either, `check_backups` confirms every backup exists and
holds the row count recorded when it was made: one missing or short backup changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from runbook_lib.errors import BackupMissingError, RunbookError
from runbook_lib.platform.cleanup import JournalFn
from runbook_lib.platform.cleanup_backup import restore_from_backup
from runbook_lib.platform.cleanup_plan import STALE
from runbook_lib.platform.schema import UPCOMING_TABLES
from runbook_lib.warehouse.base import Warehouse
from runbook_lib.warehouse.ids import TableId
from runbook_lib.warehouse.schema import TableSchema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupToRestore:
    """One backup a cleanup made, with what was recorded when it was made.

    `deleted` is the rows that cleanup recorded deleting from the table (None: not known, e.g.
    its process died around the delete); `source` says which cleanup made it (`attempt 2`).
    """

    table: TableId
    backup: TableId
    backup_rows: int | None
    cutoff: dt.date | None
    deleted: int | None = None
    source: str = ""


@dataclass(frozen=True)
class Restored:
    """What restoring one backup did: rows put back, and whether none is still missing."""

    item: BackupToRestore
    how: str  # "reinsert" or "overwrite"
    rows: int
    missing_after: int

    @property
    def verified(self) -> bool:
        """Return whether the live table holds every row the restore meant to bring back."""
        return self.missing_after == 0


def check_backups(wh: Warehouse, items: list[BackupToRestore]) -> None:
    """Raise BackupMissingError for the first backup missing or short; read only."""
    for item in items:
        if not wh.table_exists(item.backup):
            raise BackupMissingError(str(item.backup), item.table.short, item.backup_rows, None)
        if item.backup_rows is not None:
            rows = wh.row_count(item.backup)
            if rows != item.backup_rows:
                raise BackupMissingError(str(item.backup), item.table.short, item.backup_rows, rows)


def restore_backups(
    wh: Warehouse,
    items: list[BackupToRestore],
    *,
    overwrite: bool = False,
    journal: JournalFn | None = None,
) -> list[Restored]:
    """Check every backup, then restore each; `items` in the order the cleanups made them.

    Re-inserting goes from the latest backup to the earliest, so each gives back the rows its
    own cleanup deleted; overwriting uses each table's earliest backup, the state before the
    run first changed it. `journal` is told of each restore before it runs and after.
    """
    if not items:
        raise RunbookError(
            "no backups to restore (to fix this, name the run whose cleanup made them)"
        )
    check_backups(wh, items)
    journal = journal or (lambda entry: None)
    if overwrite:
        earliest: dict[TableId, BackupToRestore] = {}
        for item in items:
            earliest.setdefault(item.table, item)
        todo, restore = list(earliest.values()), _overwrite
    else:
        todo, restore = list(reversed(items)), reinsert_deleted
    done = []
    for item in todo:
        journal(
            {
                "event": "restoring",
                "table": str(item.table),
                "backup": str(item.backup),
                "overwrite": overwrite,
            }
        )
        done.append(restore(wh, item))
        journal(
            {
                "event": "restored",
                "table": str(item.table),
                "backup": str(item.backup),
                "rows": done[-1].rows,
            }
        )
    return done


def _schema(table: TableId) -> TableSchema:
    schema = next((s for s in UPCOMING_TABLES if s.name == table.table), None)
    if schema is None or not schema.key:
        raise RunbookError(
            f"{table.short} is not an upcoming table with a declared key, so its deleted rows "
            f"cannot be told apart (to fix this, restore it with overwrite)"
        )
    return schema


def _missing_sql(item: BackupToRestore) -> str:
    """Return the FROM of the backup's deleted rows whose key the live table lacks."""
    match = " AND ".join(f"l.{c} = b.{c}" for c in _schema(item.table).key)
    # STALE is the cleanup's own delete predicate; @cutoff is the cutoff that cleanup used.
    return (
        f"FROM (SELECT * FROM {item.backup.sql} WHERE {STALE}) AS b "  # noqa: S608 - TableIds
        f"WHERE NOT EXISTS (SELECT 1 FROM {item.table.sql} AS l WHERE {match})"
    )


def reinsert_deleted(wh: Warehouse, item: BackupToRestore) -> Restored:
    """Insert the backup's rows the cleanup deleted and the live table lacks; count what is left."""
    if item.cutoff is None:
        raise RunbookError(
            f"backup {item.backup} has no recorded cutoff, so the rows its cleanup deleted are "
            f"unknown (to fix this, restore it with overwrite: `runbook rollback --overwrite`)"
        )
    columns = _schema(item.table).columns
    params = {"cutoff": item.cutoff}
    sql = (
        f"INSERT INTO {item.table.sql} ({', '.join(columns)}) "  # noqa: S608 - TableIds
        f"SELECT {', '.join(f'b.{c}' for c in columns)} {_missing_sql(item)}"
    )
    inserted = wh.execute(sql, params)
    left = int(wh.query(f"SELECT COUNT(*) AS n {_missing_sql(item)}", params)["n"].iloc[0])
    log.info("re-inserted %s rows into %s from %s", f"{inserted:,}", item.table, item.backup)
    return Restored(item, "reinsert", inserted, left)


def _overwrite(wh: Warehouse, item: BackupToRestore) -> Restored:
    result = restore_from_backup(wh, item.table, item.backup)
    return Restored(
        item, "overwrite", result.restored_rows, abs(result.backup_rows - result.restored_rows)
    )
