"""What a cleanup returns, per table and in total, and the audit row each run leaves behind."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from runbook_lib.errors import WarehouseError
from runbook_lib.platform.cleanup_plan import CleanupPlan
from runbook_lib.platform.schema import CLEANUP_OPERATIONS, Tables
from runbook_lib.warehouse.base import Warehouse, one_connection
from runbook_lib.warehouse.ids import TableId

CLEANUP_TYPE = "upcoming_tables_ttl"
# The status of an audit row written before the cleanup acts (`start_audit`).
STARTED = "started"


@dataclass(frozen=True)
class TableResult:
    """What the cleanup did to one table."""

    table: TableId
    previewed: int
    deleted: int
    backup_table: TableId | None = None
    backup_rows: int | None = None
    kept_rows: int | None = None
    verified: bool = False


@dataclass(frozen=True)
class CleanupResult:
    """The outcome of applying a plan: per-table results, messages, the audit status."""

    plan: CleanupPlan
    dry_run: bool
    status: str
    tables: tuple[TableResult, ...]
    messages: tuple[str, ...]
    duration_seconds: float = 0.0

    @property
    def total_deleted(self) -> int:
        """Return the rows deleted from all tables together."""
        return sum(t.deleted for t in self.tables)

    @property
    def backups(self) -> list[str]:
        """Return the backup tables made by this run."""
        return [str(t.backup_table) for t in self.tables if t.backup_table]

    def to_dict(self) -> dict:
        """Return a JSON-ready summary (the Cloud Function's response body)."""
        return {
            "status": self.status,
            "dry_run": self.dry_run,
            "cutoff_date": self.plan.cutoff.isoformat(),
            "ttl_days": self.plan.ttl_days,
            "total_records_deleted": self.total_deleted,
            "tables_cleaned": [_table_entry(t, self.plan.cutoff) for t in self.tables],
            "backups": self.backups,
            "messages": list(self.messages),
            "duration_seconds": round(self.duration_seconds, 3),
        }


def _table_entry(t: TableResult, cutoff: dt.date) -> dict:
    return {
        "table_name": t.table.short,
        "records_previewed": t.previewed,
        "records_deleted": t.deleted,
        "cutoff_date": cutoff.isoformat(),
        "backup_table": str(t.backup_table) if t.backup_table else None,
        "backup_rows": t.backup_rows,
        "verified": t.verified,
    }


@one_connection
def start_audit(
    wh: Warehouse,
    tables: Tables,
    plan: CleanupPlan,
    *,
    trigger: str,
    run_id: str,
    now: dt.datetime | None = None,
) -> None:
    """Write the run's audit row as an intent, before any backup or delete: status 'started',
    the planned tables, nothing deleted yet. `write_audit(..., started=True)` completes that
    row; a process killed in between leaves it 'started', so a delete is never unrecorded, and
    an audit table the row does not fit refuses the cleanup before it changes anything."""
    planned = tuple(TableResult(p.table, p.stale_rows, 0) for p in plan.previews)
    result = CleanupResult(plan, False, STARTED, planned, ())
    write_audit(wh, tables, result, trigger=trigger, run_id=run_id, now=now)


@one_connection
def write_audit(
    wh: Warehouse,
    tables: Tables,
    result: CleanupResult,
    *,
    trigger: str,
    run_id: str | None = None,
    now: dt.datetime | None = None,
    errors: Sequence[str] = (),
    started: bool = False,
) -> None:
    """Append one row describing a cleanup run to `nba_orchestration.cleanup_operations`, or
    with `started` complete the row `start_audit` wrote for the same run id."""
    audit = tables.id(CLEANUP_OPERATIONS)
    row = {
        "cleanup_type": CLEANUP_TYPE,
        "cleanup_time": pd.Timestamp(now or dt.datetime.now(dt.UTC)),
        "ttl_days": result.plan.ttl_days,
        "cutoff_date": result.plan.cutoff,
        "tables_cleaned": json.dumps([_table_entry(t, result.plan.cutoff) for t in result.tables]),
        "total_records_deleted": result.total_deleted,
        "errors": json.dumps(list(errors)) if errors else None,
        "status": result.status,
        "trigger": trigger,
        "run_id": run_id,
        "backups": json.dumps(result.backups),
        "duration_seconds": float(result.duration_seconds),
    }
    if started:
        _complete(wh, audit, row)
        return
    wh.ensure_table(audit, CLEANUP_OPERATIONS)
    frame = pd.DataFrame([row])
    frame["cutoff_date"] = frame["cutoff_date"].astype("dbdate")
    frame["cleanup_time"] = pd.to_datetime(frame["cleanup_time"], utc=True)
    for col in ("ttl_days", "total_records_deleted"):
        frame[col] = frame[col].astype("Int64")
    for col in ("errors", "run_id"):
        frame[col] = frame[col].astype("string")
    wh.load_dataframe(audit, frame)


# What completing an intent row changes: the outcome, never when or what was planned.
_COMPLETED = ("status", "tables_cleaned", "total_records_deleted", "errors", "backups",
              "duration_seconds")  # fmt: skip


def _complete(wh: Warehouse, audit: TableId, row: dict) -> None:
    sets = ", ".join(
        f"{c} = CAST(@{c} AS {t})"
        for c, t in ((f.name, f.type) for f in CLEANUP_OPERATIONS.fields)
        if c in _COMPLETED
    )
    sql = (
        f"UPDATE {audit.sql} SET {sets} "  # noqa: S608 - TableId is validated
        "WHERE run_id = @run_id AND cleanup_type = @cleanup_type AND status = @started"
    )
    params = {c: row[c] for c in _COMPLETED}
    params.update(run_id=row["run_id"], cleanup_type=row["cleanup_type"], started=STARTED)
    updated = wh.execute(sql, params)
    if updated != 1:
        raise WarehouseError(
            f"{audit}: {updated} 'started' audit rows of run {row['run_id']} to complete, "
            "expected 1 (to fix this, look at the run's rows in that table: the cleanup "
            "itself finished)"
        )
