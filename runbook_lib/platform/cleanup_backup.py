"""Backups of the upcoming tables: named per run, verified when made, listed and restored."""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from runbook_lib.errors import BackupVerificationError, VerificationFailedError
from runbook_lib.platform.cleanup_plan import upcoming_tables
from runbook_lib.platform.schema import Tables
from runbook_lib.warehouse.base import Warehouse
from runbook_lib.warehouse.ids import TableId, check_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreResult:
    """A live table replaced by its backup, with both row counts."""

    live_table: TableId
    backup_table: TableId
    backup_rows: int
    restored_rows: int

    @property
    def verified(self) -> bool:
        """Return whether the live table now holds exactly the backup's rows."""
        return self.backup_rows == self.restored_rows


def backup_id(table: TableId, suffix: str) -> TableId:
    """Return the backup table id `<table>_backup_<suffix>` in the table's dataset."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", suffix)
    return table.with_table(check_name(f"{table.table}_backup_{clean}"))


def verified_backup(wh: Warehouse, table: TableId, backup: TableId) -> int:
    """Copy `table` to a new `backup` and return its rows once they match the source's."""
    backup_rows = wh.copy_table(table, backup)  # refuses an existing backup: TableExistsError
    source_rows = wh.row_count(table)
    if backup_rows != source_rows:
        raise BackupVerificationError(str(backup), source_rows, backup_rows)
    return backup_rows


def restore_from_backup(wh: Warehouse, live_table: TableId, backup_table: TableId) -> RestoreResult:
    """Replace a live table's rows with its backup's (overwrite) and verify the row counts."""
    backup_rows = wh.row_count(backup_table)
    restored = wh.copy_table(backup_table, live_table, overwrite=True)
    result = RestoreResult(live_table, backup_table, backup_rows, restored)
    if not result.verified:
        raise VerificationFailedError(
            f"restore of {live_table.short} from {backup_table.short} left {restored:,} rows but "
            f"the backup holds {backup_rows:,} (to fix this, run the restore again)"
        )
    log.info("restored %s from %s (%s rows)", live_table, backup_table, f"{restored:,}")
    return result


def list_backups(wh: Warehouse, tables: Tables) -> dict[TableId, list[TableId]]:
    """Return the existing backup tables of each upcoming table, oldest name first."""
    out: dict[TableId, list[TableId]] = {}
    for table in upcoming_tables(tables):
        prefix = f"{table.table}_backup_"
        names = wh.list_tables(table.dataset) if wh.dataset_exists(table.dataset) else []
        out[table] = [table.with_table(n) for n in sorted(names) if n.startswith(prefix)]
    return out


def backup_date(backup: TableId) -> dt.date | None:
    """Return the UTC date a backup was made, read from its name (`..._backup_YYYYMMDD...`)."""
    match = re.search(r"_backup_(\d{8})", backup.table)
    if not match:
        return None
    try:
        return dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def prune_backups(
    wh: Warehouse, tables: Tables, keep_days: int, now: dt.datetime, *, dry_run: bool = False
) -> list[TableId]:
    """Drop backups made more than `keep_days` days before `now`; return the ones dropped.

    The daily function backs up both upcoming tables on every run; without a retention it
    would leave ~730 tables a year. The seed runbook keeps backups 30 days. A backup whose
    name carries no date is never dropped.
    """
    if keep_days < 1:
        raise ValueError(f"keep_days must be 1 or more, got {keep_days}")
    oldest_kept = now.date() - dt.timedelta(days=keep_days)
    dropped = []
    for backups in list_backups(wh, tables).values():
        for backup in backups:
            made = backup_date(backup)
            if made is not None and made < oldest_kept:
                if not dry_run:
                    wh.drop_table(backup)
                dropped.append(backup)
    verb = "Would drop" if dry_run else "Dropped"
    log.info("%s %d backup(s) older than %d days", verb, len(dropped), keep_days)
    return dropped
