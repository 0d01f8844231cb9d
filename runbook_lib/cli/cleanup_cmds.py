"""`runbook cleanup` and `runbook restore`: the stale-data cleanup of UPCG and UTCG, and its undo.

The cutoff is printed once and is the one the preview, delete and verification use. A real run
needs a confirmation that echoes the preview: typed at the prompt (when stdin is a terminal) or
given as `--confirm 'delete N rows from dataset.table (plan abc123); delete M rows from ...'` (or
one --confirm per table). Outside local, a `cleanup.confirm` in the params file is refused. A table over the cap
(cleanup.max_delete_fraction) is shown as such, and its token names the share and the cap
(`delete N rows (91%, over the 50% cap) from ...`): only that token deletes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys

from runbook_lib.cli.common import add_env, add_lock_flag, env_lock, params_from, show
from runbook_lib.errors import ConfirmationRequired, ParamsError
from runbook_lib.platform import cleanup
from runbook_lib.run.dry_run import resolve_dry_run
from runbook_lib.warehouse import connect
from runbook_lib.warehouse.ids import TableId, parse_table_id

MAX_DATES_SHOWN = 40
MAX_BACKUPS_SHOWN = 10


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
        help="the confirmation printed by the preview, e.g. "
        "'delete 1234 rows from nba_analytics.upcoming_player_game_context (plan 3f9a2c)'; "
        "one token per table with stale rows, separated by ';' in one --confirm "
        "or given as repeated --confirm",
    )
    p.add_argument("--run-id", default=None, help="suffix of the backup tables (default: time)")
    add_lock_flag(p)
    p.set_defaults(func=cmd_cleanup)

    r = sub.add_parser("restore", help="overwrite an upcoming table with one of its backups")
    add_env(r)
    r.add_argument("--table", required=True, help="dataset.table (or table) to restore")
    r.add_argument(
        "--backup",
        required=True,
        help="the backup to restore from: project.dataset.table as the cleanup prints it, "
        "dataset.table or table",
    )
    add_lock_flag(r)
    r.set_defaults(func=cmd_restore)


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Preview, confirm and apply a cleanup; print every step."""
    params = params_from(args)
    dry_run = resolve_dry_run(params, args.dry_run)
    with env_lock(params, "cleanup", args, needed=not dry_run):
        return _cleanup(params, args, dry_run)


def _cleanup(params, args: argparse.Namespace, dry_run: bool) -> int:
    today = params.effective_today()
    days = _ttl_days(args, params, today)
    wh = connect(params, run_id=args.run_id)
    plan = cleanup.plan_cleanup(
        wh, params.tables, today, days, params.cleanup.max_delete_fraction, env=params.env
    )
    _print_plan(plan)
    if dry_run or not plan.total_stale:
        result = cleanup.apply_cleanup(
            wh, params.tables, plan, dry_run=dry_run, run_id=args.run_id, trigger="cli"
        )
        print("\n".join(result.messages))
        return 0
    confirm = _given_confirmation(plan, args, params)
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


def _given_confirmation(plan, args: argparse.Namespace, params) -> list[str] | None:
    """Return the tokens of --confirm, else of the params' cleanup.confirm (refused off local)."""
    if args.confirm:
        given, source = args.confirm, cleanup.COMMAND_LINE
    elif params.cleanup.confirm:
        given, source = params.cleanup.confirm, cleanup.PARAMS_FILE
    else:
        return None
    return cleanup.resolve_confirmation(plan, given, source, params.is_local)


def _ttl_days(args: argparse.Namespace, params, today: dt.date) -> int:
    """Return --days, else the params' ttl_days; refuse a value that gives no cutoff date."""
    if args.days is None:
        source, key, days = params.source, "cleanup.ttl_days", params.cleanup.ttl_days
        fix = "set cleanup.ttl_days to the number of days of upcoming rows to keep, e.g. 7"
    else:
        source, key, days = "command line", "--days", args.days
        fix = "pass the number of days of upcoming rows to keep, e.g. --days 7"
    problem = cleanup.ttl_days_problem(today, days)
    if problem:
        raise ParamsError(source, key, problem, fix)
    return days


def _print_plan(plan: cleanup.CleanupPlan) -> None:
    print(
        f"Cutoff: {plan.cutoff} (today {plan.today} UTC minus {plan.ttl_days} days); "
        f"rows dated before it are stale, rows dated on it are kept"
    )
    print(
        f"Cap: one run deletes at most {plan.max_delete_fraction:.0%} of a table "
        f"(cleanup.max_delete_fraction)"
    )
    summary = plan.summary().drop(columns="token")
    summary["fraction"] = [f"{f:.1%}" for f in summary["fraction"]]
    summary["over_cap"] = ["OVER CAP" if o else "" for o in summary["over_cap"]]
    show(summary, "\nPreview per table:")
    for short, rows in plan.per_date.groupby("table", sort=True):
        shown = rows[["game_date", "rows"]]
        print(f"\nStale rows per date in {short}:")
        print(shown.head(MAX_DATES_SHOWN).to_string(index=False))
        if len(shown) > MAX_DATES_SHOWN:
            print(f"  ... and {len(shown) - MAX_DATES_SHOWN} more dates")
    print(f"\nTotal records to delete: {plan.total_stale:,}")
    for p in plan.over_cap:
        print(
            f"  OVER THE CAP: {p.table.short} would lose {p.fraction:.1%} of its rows "
            f"(cap {plan.max_delete_fraction:.0%}); check the cutoff. If the deletion is right "
            f"(a first purge), its token names the share: confirming it deletes them anyway"
        )
    if plan.tokens:
        print(f"  confirm with: --confirm {shlex.quote(cleanup.confirmation_line(plan))}")


def _prompt(plan: cleanup.CleanupPlan) -> dict[str, str]:
    """Ask for each table's token at the terminal; without a terminal, require --confirm."""
    line = cleanup.confirmation_line(plan)
    if not sys.stdin.isatty():
        raise ConfirmationRequired(
            line, None, fix=f"stdin is not a terminal: pass --confirm {shlex.quote(line)}"
        )
    typed = {}
    for short, token in plan.tokens.items():
        print(f"\nTo go on, type exactly: {token}")
        typed[short] = input("> ")
    # Bound to their tables, so a wrong answer is reported with only that table's token.
    return typed


def cmd_restore(args: argparse.Namespace) -> int:
    """Overwrite a live upcoming table with its backup and verify the row counts."""
    params = params_from(args)
    analytics = params.datasets["analytics"]
    # An id of another project raises EnvironmentMismatchError: bad input, exit 2 like the rest.
    live = parse_table_id(args.table, params.project, analytics, "--table")
    backup = parse_table_id(args.backup, params.project, analytics, "--backup")
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
            f"name a table listed by the cleanup, e.g. {live.short}_backup_YYYYMMDDTHHMMSSZ_ab12",
        )
    wh = connect(params)
    _require_backup(wh, params, live, backup)
    with env_lock(params, "restore", args):
        result = cleanup.restore_from_backup(wh, live, backup)
    print(
        f"Restored {live.short} from {backup.short}: {result.restored_rows:,} rows "
        f"(backup holds {result.backup_rows:,}; verified)"
    )
    return 0


def _require_backup(wh, params, live: TableId, backup: TableId) -> None:
    """Refuse a --backup that does not exist, listing the backups of `live` that do."""
    if wh.table_exists(backup):
        return
    existing = [b.short for b in cleanup.list_backups(wh, params.tables).get(live, [])]
    if not existing:
        fix = f"name an existing backup; {live.short} has none yet (a cleanup run makes one)"
    else:
        shown = existing[-MAX_BACKUPS_SHOWN:]
        more = len(existing) - len(shown)
        fix = f"name one of the backups of {live.short}: {', '.join(shown)}" + (
            f" (and {more} older)" if more else ""
        )
    raise ParamsError("command line", "--backup", f"{backup.short} does not exist", fix)
