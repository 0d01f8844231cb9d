"""`runbook cleanup` and `runbook restore`: the stale-data cleanup of UPCG and UTCG, and its undo.

The cutoff is printed once and is the one the preview, delete and verification use. A real run
needs a confirmation that echoes the preview: typed at the prompt (when stdin is a terminal) or
given as `--confirm 'delete N rows from dataset.table'`, once per table with stale rows.
"""

from __future__ import annotations

import argparse
import sys

from runbook_lib.cli.common import add_env, params_from, show
from runbook_lib.errors import ConfirmationRequired, ParamsError
from runbook_lib.platform import cleanup
from runbook_lib.warehouse import connect
from runbook_lib.warehouse.ids import TableId

MAX_DATES_SHOWN = 40


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `cleanup` and `restore` subcommands."""
    p = sub.add_parser("cleanup", help="delete stale rows of the upcoming tables, with backups")
    add_env(p)
    p.add_argument(
        "--days",
        type=int,
        default=None,
        help="TTL in days (default: the params' cleanup.ttl_days, 7); must be >= 1",
    )
    p.add_argument(
        "--dry-run",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="preview only (default: the params' cleanup.dry_run)",
    )
    p.add_argument(
        "--confirm",
        action="append",
        metavar="TOKEN",
        default=None,
        help="the token printed by the preview, e.g. "
        "'delete 1234 rows from nba_analytics.upcoming_player_game_context'; "
        "repeat once per table with stale rows",
    )
    p.add_argument("--run-id", default=None, help="suffix of the backup tables (default: time)")
    p.set_defaults(func=cmd_cleanup)

    r = sub.add_parser("restore", help="overwrite an upcoming table with one of its backups")
    add_env(r)
    r.add_argument("--table", required=True, help="dataset.table (or table) to restore")
    r.add_argument("--backup", required=True, help="dataset.table (or table) of the backup")
    r.set_defaults(func=cmd_restore)


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Preview, confirm and apply a cleanup; print every step."""
    params = params_from(args)
    days = params.cleanup.ttl_days if args.days is None else args.days
    if days < 1:
        raise ParamsError(
            "command line",
            "--days",
            f"must be 1 or more, got {days}",
            "pass the number of days of upcoming rows to keep, e.g. --days 7",
        )
    dry_run = params.cleanup.dry_run if args.dry_run is None else args.dry_run
    wh = connect(params, run_id=args.run_id)
    plan = cleanup.plan_cleanup(
        wh, params.tables, params.effective_today(), days, params.cleanup.max_delete_fraction
    )
    _print_plan(plan)
    if dry_run or not plan.total_stale:
        result = cleanup.apply_cleanup(
            wh, params.tables, plan, dry_run=dry_run, run_id=args.run_id, trigger="cli"
        )
        print("\n".join(result.messages))
        return 0
    confirm = args.confirm or ([params.cleanup.confirm] if params.cleanup.confirm else None)
    if confirm is None:
        confirm = _prompt(plan)
    result = cleanup.apply_cleanup(
        wh, params.tables, plan, confirm=confirm, run_id=args.run_id, trigger="cli"
    )
    print("\n".join(result.messages))
    print(
        f"CLEANUP COMPLETE: deleted {result.total_deleted:,} rows (previewed "
        f"{plan.total_stale:,}); backups: {', '.join(result.backups)}"
    )
    print("Backups can be dropped after 30 days if no issues occur.")
    return 0


def _print_plan(plan: cleanup.CleanupPlan) -> None:
    print(
        f"Cutoff: {plan.cutoff} (today {plan.today} UTC minus {plan.ttl_days} days); "
        f"rows dated before it are stale, rows dated on it are kept"
    )
    show(plan.summary().drop(columns="token"), "\nPreview per table:")
    for short, rows in plan.per_date.groupby("table", sort=True):
        shown = rows[["game_date", "rows"]]
        print(f"\nStale rows per date in {short}:")
        print(shown.head(MAX_DATES_SHOWN).to_string(index=False))
        if len(shown) > MAX_DATES_SHOWN:
            print(f"  ... and {len(shown) - MAX_DATES_SHOWN} more dates")
    print(f"\nTotal records to delete: {plan.total_stale:,}")
    for token in plan.tokens.values():
        print(f"  confirmation token: {token}")


def _prompt(plan: cleanup.CleanupPlan) -> list[str]:
    """Ask for each table's token at the terminal; without a terminal, require --confirm."""
    tokens = list(plan.tokens.values())
    if not sys.stdin.isatty():
        raise ConfirmationRequired("; ".join(tokens), None)
    typed = []
    for token in tokens:
        print(f"\nTo go on, type exactly: {token}")
        typed.append(input("> "))
    return typed


def _table_id(params, name: str) -> TableId:
    dataset, _, table = name.rpartition(".")
    return TableId(params.project, dataset or params.datasets["analytics"], table)


def cmd_restore(args: argparse.Namespace) -> int:
    """Overwrite a live upcoming table with its backup and verify the row counts."""
    params = params_from(args)
    live, backup = _table_id(params, args.table), _table_id(params, args.backup)
    if live not in cleanup.upcoming_tables(params.tables):
        raise ParamsError(
            "command line",
            "--table",
            f"{live.short} is not an upcoming table",
            "name nba_analytics.upcoming_player_game_context or "
            "nba_analytics.upcoming_team_game_context",
        )
    if backup.dataset != live.dataset or not backup.table.startswith(f"{live.table}_backup_"):
        raise ParamsError(
            "command line",
            "--backup",
            f"{backup.short} is not a backup of {live.short}",
            f"name a table listed by the cleanup, e.g. {live.short}_backup_YYYYMMDD_HHMMSS",
        )
    result = cleanup.restore_from_backup(connect(params), live, backup)
    print(
        f"Restored {live.short} from {backup.short}: {result.restored_rows:,} rows "
        f"(backup holds {result.backup_rows:,}; verified)"
    )
    return 0
