"""Stale-data cleanup of the upcoming tables (UPCG, UTCG): plan, confirm, back up, delete, verify.

One core serves `runbook cleanup`, the runbook's phase 02 and the daily Cloud Function:

1. `plan_cleanup` (cleanup_plan.py) computes the cutoff ONCE (today - ttl_days, a UTC date; rows
   dated on the cutoff are kept, stale means `game_date < cutoff`) and previews each table in two
   set-based queries. The frozen `CleanupPlan` carries one confirmation token per table with stale
   rows, e.g. ``delete 1234 rows from nba_analytics.upcoming_player_game_context (plan 3f9a2c)``.
2. `check_confirmation` (cleanup_confirm.py, the one definition of the confirmation line)
   accepts only tokens that echo that plan: its counts and the plan id that binds the stale
   rows' key digest, the environment and the project.
3. `apply_cleanup` refuses a table over the cap unless its confirmation is the token that names
   the share and the cap (never on the unattended daily function), then checks the confirmation, makes a verified backup of each table
   (cleanup_backup.py: a real copy, never overwriting one), deletes exactly the previewed rows or
   none (`Warehouse.delete_exact`, whose guard compares the count and the key digest inside the
   DELETE itself), verifies that no stale row remains and every kept row is still
   there. Its one audit row in `nba_orchestration.cleanup_operations` (cleanup_result.py) is
   written as an intent ('started') before the first backup and completed after the delete.

This module is the cleanup tool's one door: callers import `cleanup` and find the plan, result and
backup names re-exported here.

The original script computed its cutoff in local time, backed up with a CTAS it never checked,
and exited 0 on a failed verification (original-system.md 3.2); each of those is fixed here.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from runbook_lib.clock import new_run_id
from runbook_lib.errors import (
    CleanupCapExceededError,
    DeleteContentMismatchError,
    DeleteCountMismatchError,
    RunbookError,
    TableExistsError,
    VerificationFailedError,
)
from runbook_lib.faults import crash_point
from runbook_lib.platform.cleanup_backup import (
    RestoreResult,
    backup_id,
    list_backups,
    prune_backups,
    restore_from_backup,
    verified_backup,
)
from runbook_lib.platform.cleanup_confirm import (
    AUTO,
    COMMAND_LINE,
    FORM,
    PARAMS_FILE,
    check_confirmation,
    confirmation_line,
    given_tokens,
    resolve_confirmation,
    split_line,
)
from runbook_lib.platform.cleanup_plan import (
    KEPT,
    STALE,
    CleanupPlan,
    TablePreview,
    cutoff_for,
    plan_cleanup,
    ttl_days_problem,
    upcoming_tables,
)
from runbook_lib.platform.cleanup_result import (
    CleanupResult,
    TableResult,
    start_audit,
    write_audit,
)
from runbook_lib.platform.schema import Tables
from runbook_lib.warehouse.base import Warehouse
from runbook_lib.warehouse.ids import TableId

__all__ = [
    "AUTO",
    "COMMAND_LINE",
    "FORM",
    "PARAMS_FILE",
    "STALE",
    "TRIGGERS",
    "CleanupPlan",
    "CleanupResult",
    "RestoreResult",
    "TablePreview",
    "TableResult",
    "apply_cleanup",
    "backup_id",
    "check_confirmation",
    "confirmation_line",
    "cutoff_for",
    "list_backups",
    "plan_cleanup",
    "prune_backups",
    "resolve_confirmation",
    "restore_from_backup",
    "split_line",
    "ttl_days_problem",
    "upcoming_tables",
    "write_audit",
]

log = logging.getLogger(__name__)

TRIGGERS = ("cli", "runbook", "scheduled")
# Where a cleanup records what it is about to do before doing it (run/journal.py's Journal in a
# run): called with one dict per step, and expected to have made it durable when it returns.
JournalFn = Callable[[dict], None]


def _no_journal(entry: dict) -> None:
    """Record nothing (the CLI and the daily function keep their audit row instead)."""


def apply_cleanup(
    wh: Warehouse,
    tables: Tables,
    plan: CleanupPlan,
    *,
    confirm=None,
    dry_run: bool = False,
    run_id: str | None = None,
    trigger: str = "cli",
    now: dt.datetime | None = None,
    journal: JournalFn | None = None,
) -> CleanupResult:
    """Apply a plan: confirm, cap, verified backup, exact delete, verification, audit row.

    Args:
        confirm: tokens echoing the plan (see `check_confirmation`); unused on a dry run.
        dry_run: report "Would delete N rows" and change nothing (no backup, no audit row).
        run_id: names the backups `<table>_backup_<run_id>`; default the UTC time
            `YYYYMMDD_HHMMSS`.
        trigger: 'cli', 'runbook' or 'scheduled', recorded in the audit row.
        journal: called with the intent (tables, backups, counts, cutoff) before the first
            backup, then with each verified backup and each delete (before and after), so a
            process killed half-way leaves a record of what it had done.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}, got {trigger!r}")
    started = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    journal = journal or _no_journal
    if dry_run:
        return _dry_run(plan, started)
    # The backups' suffix is also the audit row's run id, so the row names its backups' run.
    suffix = run_id or new_run_id(when=now)
    done: list[TableResult] = []
    messages: list[str] = []
    try:
        _check_caps(plan, confirm, trigger)  # before the confirmation check and any backup
    except CleanupCapExceededError as e:
        result = _result(plan, "refused", done, [f"FAILED: {e}"], started)
        _safe_audit(wh, tables, result, trigger, suffix, now, errors=[str(e)])
        raise
    check_confirmation(plan, confirm)
    # The audit row first, as an intent: an audit table it does not fit refuses here.
    start_audit(wh, tables, plan, trigger=trigger, run_id=suffix, now=now)
    try:
        with wh.session():
            _apply_checked(wh, plan, suffix, messages, done, journal)
    except RunbookError as e:
        status = "refused" if not any(t.deleted for t in done) else "failed"
        result = _result(plan, status, done, messages + [f"FAILED: {e}"], started)
        _safe_audit(wh, tables, result, trigger, suffix, now, errors=[str(e)], started=True)
        raise
    if not plan.total_stale:
        messages.append(
            f"No stale records found in any table (cutoff {plan.cutoff}); nothing was deleted"
        )
    status = "success" if plan.total_stale else "nothing_to_do"
    result = _result(plan, status, done, messages, started)
    write_audit(wh, tables, result, trigger=trigger, run_id=suffix, now=now, started=True)
    journal({"event": "done", "status": status, "rows_deleted": result.total_deleted})
    return result


def _apply_checked(
    wh: Warehouse,
    plan: CleanupPlan,
    suffix: str,
    messages: list[str],
    results: list,
    journal: JournalFn,
) -> None:
    """Check drift, back up every table, then delete and verify table by table.

    Appends to `messages` and `results` as it goes, so a failure still reports what was done.
    """
    _check_still_matches(wh, plan)
    backups = _back_up_stale_tables(wh, plan, suffix, messages, journal)
    crash_point("cleanup.after_backup")
    for p in plan.previews:
        if not p.stale_rows:
            messages.append(
                f"{p.table.short}: no stale records (cutoff {plan.cutoff}); nothing deleted"
            )
            results.append(TableResult(p.table, 0, 0, verified=True))
            continue
        results.append(_delete_and_verify(wh, plan, p, *backups[p.table], messages, journal))
    crash_point("cleanup.after_delete")


def _back_up_stale_tables(
    wh: Warehouse, plan: CleanupPlan, suffix: str, messages: list[str], journal: JournalFn
) -> dict[TableId, tuple[TableId, int]]:
    """Back up every table with stale rows; return table -> (backup, backup rows)."""
    names = {p.table: backup_id(p.table, suffix) for p in plan.previews if p.stale_rows}
    # Every backup name is checked, and every backup made, before the first delete: a collision
    # on the second table must not find the first one already cleaned.
    for backup in names.values():
        if wh.table_exists(backup):
            raise TableExistsError(str(backup))
    journal(_intent(plan, names))
    crash_point("cleanup.before_backup")
    saved = {}
    for table, backup in names.items():
        saved[table] = (backup, verified_backup(wh, table, backup))
        journal(
            {
                "event": "backup",
                "table": str(table),
                "backup": str(backup),
                "backup_rows": saved[table][1],
                "cutoff": plan.cutoff.isoformat(),
            }
        )
        messages.append(
            f"Backed up {table.short} to {backup.short} ({saved[table][1]:,} rows, verified)"
        )
    return saved


def _delete_and_verify(
    wh: Warehouse,
    plan: CleanupPlan,
    p: TablePreview,
    backup: TableId,
    backup_rows: int,
    messages: list[str],
    journal: JournalFn,
) -> TableResult:
    """Delete exactly the previewed stale rows of one table and verify it against its backup."""
    journal({"event": "deleting", "table": str(p.table), "rows": p.stale_rows})
    # What is guaranteed: the guard inside the one DELETE compares the count AND the key digest
    # of the plan with the rows the DELETE itself sees. DuckDB runs the statement in one
    # transaction; BigQuery runs a DML statement and its subquery on one snapshot, and fails one
    # of two conflicting mutations of a table. So the DELETE removes exactly the previewed rows
    # or none; rows swapped after the re-check above fail the guard, and a row written after the
    # DELETE's snapshot is left alone. (The 6-hex plan id a person types is a short check of the
    # same digest; the guard compares the digest in full.)
    deleted = wh.delete_exact(p.table, STALE, {"cutoff": plan.cutoff}, p.stale_rows, p.digest)
    crash_point("cleanup.deleted_unjournaled")
    journal({"event": "deleted", "table": str(p.table), "rows": deleted, "backup": str(backup)})
    messages.append(f"Deleted {deleted:,} rows from {p.table.short}")
    kept = _verify(wh, p.table, backup, plan.cutoff, deleted)
    messages.append(
        f"Verification passed: {p.table.short} has no stale records and keeps "
        f"all {kept:,} rows dated on or after {plan.cutoff}"
    )
    log.info("%s: deleted %s rows, backup %s", p.table.short, f"{deleted:,}", backup)
    return TableResult(p.table, p.stale_rows, deleted, backup, backup_rows, kept, True)


def _intent(plan: CleanupPlan, backups: dict[TableId, TableId]) -> dict:
    """Return the journal's intent: each table's backup name and counts, the cutoff, the predicate."""
    return {
        "event": "intent",
        "step": "cleanup",
        "cutoff": plan.cutoff.isoformat(),
        "ttl_days": plan.ttl_days,
        "predicate": STALE,
        "tables": [
            {
                "table": str(p.table),
                "backup": str(backups[p.table]),
                "stale_rows": p.stale_rows,
                "total_rows": p.total_rows,
                "plan_id": p.plan_id,
                "key": list(p.digest.key) if p.digest else None,
            }
            for p in plan.previews
            if p.table in backups
        ],
    }


def _result(plan, status, done, messages, started) -> CleanupResult:
    return CleanupResult(
        plan, False, status, tuple(done), tuple(messages), time.monotonic() - started
    )


def _dry_run(plan: CleanupPlan, started: float) -> CleanupResult:
    cap = plan.max_delete_fraction
    messages = []
    for p in plan.previews:
        if not p.stale_rows:
            messages.append(f"{p.table.short}: no stale records (cutoff {plan.cutoff})")
            continue
        line = (
            f"Would delete {p.stale_rows:,} rows from {p.table.short} (dated before "
            f"{plan.cutoff}; {p.fraction:.1%} of the table, cap {cap:.0%})"
        )
        if p.over_cap(cap):
            line += ": OVER THE CAP, a real run needs the token that names the share"
        messages.append(line)
    if plan.over_cap:
        messages.append(
            f"{len(plan.over_cap)} table(s) over the {cap:.0%} cap: check the cutoff; if the "
            f"deletion is right (a first purge), a real run deletes them only when confirmed by "
            f"their tokens, which name the share and the cap"
        )
    messages.append("Dry run complete. No changes made.")
    tables = tuple(TableResult(p.table, p.stale_rows, 0) for p in plan.previews)
    return CleanupResult(plan, True, "dry_run", tables, tuple(messages), time.monotonic() - started)


def _check_caps(plan: CleanupPlan, confirm, trigger: str) -> None:
    """Refuse a table over the cap unless a person confirmed the token naming its share.

    Checked for every table before any backup or delete, so a refusal changes nothing. The
    scheduled function has nobody to confirm: it never deletes over the cap.
    """
    given = set() if trigger == "scheduled" else given_tokens(confirm)
    for p in plan.over_cap:
        if p.token not in given:
            token = None if trigger == "scheduled" else p.token
            raise CleanupCapExceededError(
                p.table.short, p.stale_rows, p.total_rows, plan.max_delete_fraction, token
            )


def _check_still_matches(wh: Warehouse, plan: CleanupPlan) -> None:
    # Re-digest every table first so a drift in the second table is refused before the first is
    # touched; delete_exact still guards each DELETE itself against a change after this point.
    for p in plan.previews:
        now = wh.rows_digest(p.table, p.digest.key, STALE, {"cutoff": plan.cutoff})
        if now.rows != p.stale_rows:
            raise DeleteCountMismatchError(p.table.short, p.stale_rows, now.rows)
        if now != p.digest:
            raise DeleteContentMismatchError(p.table.short, p.stale_rows)


def _verify(wh: Warehouse, table: TableId, backup: TableId, cutoff: dt.date, deleted: int) -> int:
    sql = (
        f"SELECT 'live' AS side, COUNTIF({STALE}) AS stale, COUNTIF({KEPT}) AS kept "  # noqa: S608
        f"FROM {table.sql} UNION ALL "
        f"SELECT 'backup' AS side, COUNTIF({STALE}), COUNTIF({KEPT}) FROM {backup.sql}"
    )
    counts = wh.query(sql, {"cutoff": cutoff}).set_index("side")
    live, saved = counts.loc["live"], counts.loc["backup"]
    fix = f"restore with `runbook restore --table {table.short} --backup {backup.short}`"
    if int(live["stale"]):
        raise VerificationFailedError(
            f"Verification failed: {table.short} still has {int(live['stale']):,} stale records "
            f"(to fix this, inspect the table; if needed {fix})"
        )
    if int(live["kept"]) != int(saved["kept"]) or int(saved["stale"]) != deleted:
        raise VerificationFailedError(
            f"Verification failed: {table.short} keeps {int(live['kept']):,} rows dated on or "
            f"after {cutoff} but its backup holds {int(saved['kept']):,} (to fix this, {fix})"
        )
    return int(live["kept"])


def _safe_audit(wh, tables, result, trigger, run_id, now, errors, started=False) -> None:
    # The failure being reported matters more than its audit row: log, never mask it.
    try:
        write_audit(
            wh, tables, result, trigger=trigger, run_id=run_id, now=now, errors=errors,
            started=started,
        )  # fmt: skip
    except Exception:  # noqa: BLE001
        log.exception("could not write the cleanup audit row")
