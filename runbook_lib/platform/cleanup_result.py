"""What a cleanup returns, per table and in total, and the audit row each run leaves behind."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from runbook_lib.platform.cleanup_plan import CleanupPlan
from runbook_lib.platform.schema import CLEANUP_OPERATIONS, Tables
from runbook_lib.warehouse.base import Warehouse
from runbook_lib.warehouse.ids import TableId

CLEANUP_TYPE = "upcoming_tables_ttl"


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


def write_audit(
    wh: Warehouse,
    tables: Tables,
    result: CleanupResult,
    *,
    trigger: str,
    run_id: str | None = None,
    now: dt.datetime | None = None,
    errors: Sequence[str] = (),
) -> None:
    """Append one row describing a cleanup run to `nba_orchestration.cleanup_operations`."""
    audit = tables.id(CLEANUP_OPERATIONS)
    wh.ensure_table(audit, CLEANUP_OPERATIONS)
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
    frame = pd.DataFrame([row])
    frame["cutoff_date"] = frame["cutoff_date"].astype("dbdate")
    frame["cleanup_time"] = pd.to_datetime(frame["cleanup_time"], utc=True)
    for col in ("ttl_days", "total_records_deleted"):
        frame[col] = frame[col].astype("Int64")
    for col in ("errors", "run_id"):
        frame[col] = frame[col].astype("string")
    wh.load_dataframe(audit, frame)
