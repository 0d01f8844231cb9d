"""`runbook schema plan|apply`: the declared tables against the live ones, and what may be added."""

from __future__ import annotations

import argparse

from runbook_lib.cli.common import add_env, add_lock_flag, env_lock, params_from, show
from runbook_lib.platform import schema_check
from runbook_lib.warehouse import connect


def register(subparsers) -> None:
    """Add the schema subcommand with its plan and apply actions."""
    parser = subparsers.add_parser(
        "schema",
        help="compare the declared tables with the live ones; apply creates missing tables and "
        "adds missing NULLABLE columns (never drops or retypes)",
    )
    parser.add_argument("action", choices=("plan", "apply"))
    add_env(parser)
    parser.add_argument("--confirm", help="apply: the line `runbook schema plan` printed")
    add_lock_flag(parser)
    parser.set_defaults(func=cmd_schema)


def _show_plan(params, differences) -> list:
    show(schema_check.as_frame(differences), f"Declared tables against {params.env}'s warehouse:")
    changes = schema_check.plan_changes(differences)
    print()
    if changes:
        print("The plan (apply adds, never drops or retypes):")
        for c in changes:
            print(f"  {c.action} {c.table}: {c.detail}")
        print(f"Confirm with: --confirm '{schema_check.confirmation_line(params.env, changes)}'")
    else:
        print("Nothing to create or add.")
    for d in schema_check.unfixable(differences):
        print(f"BLOCKING, not fixed by apply: {d.table}.{d.column}: {d.what} declared {d.declared}, "
              f"live {d.live} (migrate the table by hand)")  # fmt: skip
    return changes


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the differences and the plan; with apply, carry out the confirmed plan."""
    params = params_from(args)
    wh = connect(params)
    differences = schema_check.compare(wh, params.tables)
    changes = _show_plan(params, differences)
    if args.action == "plan":
        return 1 if any(d.blocking for d in differences) else 0
    with env_lock(params, "schema-apply", args):
        done = schema_check.apply_changes(wh, params.tables, params.env, changes, args.confirm)
    print(f"\nApplied {len(done)} change(s).")
    after = schema_check.compare(wh, params.tables)
    return 1 if any(d.blocking for d in after) else 0
