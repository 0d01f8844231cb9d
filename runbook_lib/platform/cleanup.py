"""Stale-data cleanup of the upcoming tables (UPCG, UTCG): plan, confirm, back up, delete, verify.

One core serves `runbook cleanup`, the runbook's phase 02 and the daily Cloud Function:

1. `plan_cleanup` computes the cutoff ONCE (today - ttl_days, a UTC date; rows dated on the
   cutoff are kept, stale means `game_date < cutoff`) and previews each table in two set-based
   queries. The frozen `CleanupPlan` carries one confirmation token per table with stale rows,
   e.g. ``delete 1234 rows from nba_analytics.upcoming_player_game_context``.
2. `check_confirmation` accepts only tokens that echo that plan.
3. `apply_cleanup` refuses a delete over the cap, makes a verified backup of each table
   (a real copy, never overwriting one), deletes exactly the previewed rows or none
   (`Warehouse.delete_exact`), verifies that no stale row remains and every kept row is still
   there, and writes one audit row to `nba_orchestration.cleanup_operations`.

The original script computed its cutoff in local time, backed up with a CTAS it never checked,
and exited 0 on a failed verification (original-system.md 3.2); each of those is fixed here.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from runbook_lib.errors import (
    BackupVerificationError,
    CleanupCapExceededError,
    ConfirmationRequired,
    DeleteCountMismatchError,
    RunbookError,
    TableExistsError,
    VerificationFailedError,
)
from runbook_lib.platform.schema import CLEANUP_OPERATIONS, UPCOMING_TABLES, Tables
from runbook_lib.warehouse.base import Warehouse
from runbook_lib.warehouse.ids import TableId, check_name

log = logging.getLogger(__name__)

CLEANUP_TYPE = "upcoming_tables_ttl"
TRIGGERS = ("cli", "runbook", "scheduled")
STALE = "game_date < @cutoff"
KEPT = "game_date >= @cutoff"


@dataclass(frozen=True)
class TablePreview:
    """What a plan found in one table: stale rows, their dates and the table's size."""

    table: TableId
    stale_rows: int
    stale_dates: int
    min_date: dt.date | None
    max_date: dt.date | None
    total_rows: int

    @property
    def token(self) -> str:
        """Return the confirmation token that echoes this table and its stale row count."""
        return f"delete {self.stale_rows} rows from {self.table.short}"

    @property
    def fraction(self) -> float:
        """Return the share of the table the plan would delete."""
        return self.stale_rows / self.total_rows if self.total_rows else 0.0


@dataclass(frozen=True)
class CleanupPlan:
    """A previewed cleanup: the cutoff, one preview per table and the stale rows per date."""

    today: dt.date
    ttl_days: int
    cutoff: dt.date
    max_delete_fraction: float
    previews: tuple[TablePreview, ...]
    # Columns table, game_date, rows: what a chart of the stale rows needs.
    per_date: pd.DataFrame = field(compare=False, repr=False)

    def preview(self, table: TableId | str) -> TablePreview:
        """Return the preview of a table, named by TableId, `dataset.table` or full id."""
        for p in self.previews:
            if table in (p.table, p.table.short, str(p.table)):
                return p
        raise KeyError(f"{table} is not part of this cleanup plan")

    def token(self, table: TableId | str) -> str:
        """Return the confirmation token of one table."""
        return self.preview(table).token

    @property
    def tokens(self) -> dict[str, str]:
        """Return `dataset.table` -> token for every table that has stale rows."""
        return {p.table.short: p.token for p in self.previews if p.stale_rows}

    @property
    def total_stale(self) -> int:
        """Return the stale rows of all tables together."""
        return sum(p.stale_rows for p in self.previews)

    def summary(self) -> pd.DataFrame:
        """Return the per-table preview as a DataFrame (one row per table)."""
        rows = [
            {
                "table": p.table.short,
                "stale_rows": p.stale_rows,
                "stale_dates": p.stale_dates,
                "min_date": p.min_date,
                "max_date": p.max_date,
                "total_rows": p.total_rows,
                "fraction": round(p.fraction, 4),
                "token": p.token if p.stale_rows else "",
            }
            for p in self.previews
        ]
        return pd.DataFrame(rows)


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


def upcoming_tables(tables: Tables) -> list[TableId]:
    """Return the TableIds of UPCG and UTCG."""
    return [tables.id(s) for s in UPCOMING_TABLES]


def cutoff_for(today: dt.date, ttl_days: int) -> dt.date:
    """Return the first kept date: rows older than `today - ttl_days` are stale."""
    if not isinstance(ttl_days, int) or isinstance(ttl_days, bool) or ttl_days < 1:
        raise ValueError(
            f"ttl_days must be a whole number of days >= 1, got {ttl_days!r} "
            f"(0 or less would make today's and future rows stale)"
        )
    return today - dt.timedelta(days=ttl_days)


def plan_cleanup(
    wh: Warehouse, tables: Tables, today: dt.date, ttl_days: int, max_delete_fraction: float
) -> CleanupPlan:
    """Preview the stale rows of both upcoming tables against one cutoff computed here."""
    cutoff = cutoff_for(today, ttl_days)
    ids = upcoming_tables(tables)
    labels = {f"t{i}": t.short for i, t in enumerate(ids)}
    params = {"cutoff": cutoff, **labels}
    per_date_sql = "\nUNION ALL\n".join(
        f"SELECT @t{i} AS table_name, game_date, COUNT(*) AS n FROM {t.sql} "  # noqa: S608
        f"WHERE {STALE} GROUP BY game_date"
        for i, t in enumerate(ids)
    )
    totals_sql = "\nUNION ALL\n".join(
        f"SELECT @t{i} AS table_name, COUNT(*) AS n FROM {t.sql}"  # noqa: S608
        for i, t in enumerate(ids)
    )
    per_date = wh.query(per_date_sql, params).rename(columns={"table_name": "table", "n": "rows"})
    per_date = per_date.sort_values(["table", "game_date"]).reset_index(drop=True)
    totals = wh.query(totals_sql, labels).set_index("table_name")["n"]
    previews = tuple(_preview(t, per_date, int(totals[t.short])) for t in ids)
    plan = CleanupPlan(today, ttl_days, cutoff, float(max_delete_fraction), previews, per_date)
    for p in previews:
        log.info(
            "%s: %s stale rows on %s dates (cutoff %s)",
            p.table.short,
            f"{p.stale_rows:,}",
            p.stale_dates,
            cutoff,
        )
    return plan


def _preview(table: TableId, per_date: pd.DataFrame, total: int) -> TablePreview:
    rows = per_date[per_date["table"] == table.short]
    if rows.empty:
        return TablePreview(table, 0, 0, None, None, total)
    return TablePreview(
        table,
        int(rows["rows"].sum()),
        len(rows),
        rows["game_date"].min(),
        rows["game_date"].max(),
        total,
    )


def _norm(token: str) -> str:
    # Whitespace is forgiven (a double space typed at 4 a.m.); every other character must match.
    return " ".join(str(token).split())


def check_confirmation(plan: CleanupPlan, confirm) -> None:
    """Accept `confirm` only if it echoes the plan's token of every table with stale rows.

    `confirm` is one of:
      - a token string (enough when exactly one table has stale rows);
      - a sequence of token strings, one per table with stale rows, in any order;
      - a mapping of `dataset.table` (or full table id) -> token.
    A missing, stale (another row count) or unknown token raises ConfirmationRequired with the
    token expected; nothing is changed. A plan with no stale rows needs no confirmation.
    """
    expected = {short: _norm(tok) for short, tok in plan.tokens.items()}
    if not expected:
        return
    given = _given_tokens(plan, confirm)
    for short, token in expected.items():
        got = given.pop(short, None)
        if got != token:
            raise ConfirmationRequired(plan.tokens[short], got)
    if given:
        short, got = next(iter(given.items()))
        raise ConfirmationRequired("; ".join(plan.tokens.values()), got)


def _given_tokens(plan: CleanupPlan, confirm) -> dict[str, str]:
    if confirm is None or confirm == "" or confirm == []:
        return {}
    if isinstance(confirm, Mapping):
        out = {}
        for key, token in confirm.items():
            try:
                out[plan.preview(key).table.short] = _norm(token)
            except KeyError:
                raise ConfirmationRequired("; ".join(plan.tokens.values()), str(key)) from None
        return out
    tokens = [confirm] if isinstance(confirm, str) else list(confirm)
    out = {}
    for token in tokens:
        match = re.fullmatch(r"delete \d+ rows from (\S+)", _norm(token))
        try:
            short = plan.preview(match.group(1)).table.short if match else None
        except KeyError:
            short = None
        if short is None or short in out:
            raise ConfirmationRequired("; ".join(plan.tokens.values()), str(token))
        out[short] = _norm(token)
    return out


def backup_id(table: TableId, suffix: str) -> TableId:
    """Return the backup table id `<table>_backup_<suffix>` in the table's dataset."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", suffix)
    return table.with_table(check_name(f"{table.table}_backup_{clean}"))


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
) -> CleanupResult:
    """Apply a plan: confirm, cap, verified backup, exact delete, verification, audit row.

    Args:
        confirm: tokens echoing the plan (see `check_confirmation`); unused on a dry run.
        dry_run: report "Would delete N rows" and change nothing (no backup, no audit row).
        run_id: names the backups `<table>_backup_<run_id>`; default the UTC time
            `YYYYMMDD_HHMMSS`.
        trigger: 'cli', 'runbook' or 'scheduled', recorded in the audit row.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}, got {trigger!r}")
    started = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    if dry_run:
        return _dry_run(plan, started)
    check_confirmation(plan, confirm)
    suffix = run_id or now.strftime("%Y%m%d_%H%M%S")
    done: list[TableResult] = []
    messages: list[str] = []
    try:
        with wh.session():
            _apply_checked(wh, plan, suffix, messages, done)
    except RunbookError as e:
        status = "refused" if not any(t.deleted for t in done) else "failed"
        result = _result(plan, status, done, messages + [f"FAILED: {e}"], started)
        _safe_audit(wh, tables, result, trigger, run_id, now, errors=[str(e)])
        raise
    status = "success" if plan.total_stale else "nothing_to_do"
    if not plan.total_stale:
        messages.append(
            f"No stale records found in any table (cutoff {plan.cutoff}); nothing was deleted"
        )
    result = _result(plan, status, done, messages, started)
    write_audit(wh, tables, result, trigger=trigger, run_id=run_id, now=now)
    return result


def _apply_checked(
    wh: Warehouse, plan: CleanupPlan, suffix: str, messages: list[str], results: list
) -> None:
    """Check caps and drift, back up every table, then delete and verify table by table.

    Appends to `messages` and `results` as it goes, so a failure still reports what was done.
    """
    _check_caps(plan)
    _check_still_matches(wh, plan)
    stale = [p for p in plan.previews if p.stale_rows]
    backups = {p.table: backup_id(p.table, suffix) for p in stale}
    # Every backup name is checked, and every backup made, before the first delete: a collision
    # on the second table must not find the first one already cleaned.
    for backup in backups.values():
        if wh.table_exists(backup):
            raise TableExistsError(str(backup))
    saved = {}
    for table, backup in backups.items():
        saved[table] = _verified_backup(wh, table, backup)
        messages.append(
            f"Backed up {table.short} to {backup.short} ({saved[table]:,} rows, verified)"
        )
    for p in plan.previews:
        if not p.stale_rows:
            messages.append(
                f"{p.table.short}: no stale records (cutoff {plan.cutoff}); nothing deleted"
            )
            results.append(TableResult(p.table, 0, 0, verified=True))
            continue
        backup = backups[p.table]
        deleted = wh.delete_exact(p.table, STALE, {"cutoff": plan.cutoff}, p.stale_rows)
        messages.append(f"Deleted {deleted:,} rows from {p.table.short}")
        kept = _verify(wh, p.table, backup, plan.cutoff, deleted)
        messages.append(
            f"Verification passed: {p.table.short} has no stale records and keeps "
            f"all {kept:,} rows dated on or after {plan.cutoff}"
        )
        log.info("%s: deleted %s rows, backup %s", p.table.short, f"{deleted:,}", backup)
        results.append(
            TableResult(p.table, p.stale_rows, deleted, backup, saved[p.table], kept, True)
        )


def _result(plan, status, done, messages, started) -> CleanupResult:
    return CleanupResult(
        plan, False, status, tuple(done), tuple(messages), time.monotonic() - started
    )


def _dry_run(plan: CleanupPlan, started: float) -> CleanupResult:
    messages = [
        f"Would delete {p.stale_rows:,} rows from {p.table.short} (dated before {plan.cutoff})"
        if p.stale_rows
        else f"{p.table.short}: no stale records (cutoff {plan.cutoff})"
        for p in plan.previews
    ]
    messages.append("Dry run complete. No changes made.")
    tables = tuple(TableResult(p.table, p.stale_rows, 0) for p in plan.previews)
    return CleanupResult(plan, True, "dry_run", tables, tuple(messages), time.monotonic() - started)


def _check_caps(plan: CleanupPlan) -> None:
    # Checked for every table before any backup or delete, so a refusal changes nothing.
    for p in plan.previews:
        if p.stale_rows and p.fraction > plan.max_delete_fraction:
            raise CleanupCapExceededError(
                p.table.short, p.stale_rows, p.total_rows, plan.max_delete_fraction
            )


def _check_still_matches(wh: Warehouse, plan: CleanupPlan) -> None:
    # Recount every table first so a drift in the second table is refused before the first is
    # touched; delete_exact still guards each DELETE itself against a change after this point.
    for p in plan.previews:
        now = wh.row_count(p.table, STALE, {"cutoff": plan.cutoff})
        if now != p.stale_rows:
            raise DeleteCountMismatchError(p.table.short, p.stale_rows, now)


def _verified_backup(wh: Warehouse, table: TableId, backup: TableId) -> int:
    backup_rows = wh.copy_table(table, backup)  # refuses an existing backup: TableExistsError
    source_rows = wh.row_count(table)
    if backup_rows != source_rows:
        raise BackupVerificationError(str(backup), source_rows, backup_rows)
    return backup_rows


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


def _safe_audit(wh, tables, result, trigger, run_id, now, errors) -> None:
    # The failure being reported matters more than its audit row: log, never mask it.
    try:
        write_audit(wh, tables, result, trigger=trigger, run_id=run_id, now=now, errors=errors)
    except Exception:  # noqa: BLE001
        log.exception("could not write the cleanup audit row")


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
