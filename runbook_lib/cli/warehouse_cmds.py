"""`runbook seed` and `runbook describe`: build the local warehouse and show what a warehouse holds."""

from __future__ import annotations

import argparse
import dataclasses
import time

from runbook_lib import paths
from runbook_lib.cli.common import add_env, add_lock_flag, env_lock, params_from, show
from runbook_lib.errors import ParamsError
from runbook_lib.platform.checkpoint import clear_checkpoints
from runbook_lib.platform.league import describe_warehouse, refuse_unless_local, seed_league
from runbook_lib.platform.schema import ALL_TABLES
from runbook_lib.run import lock
from runbook_lib.run.phase_view import warehouse_text
from runbook_lib.warehouse import connect, emulator_server

_TITLES = {
    "tables": "Tables (rows and the range of their date column)",
    "seasons": "Seasons (schedule, and PGS players per game date)",
    "stale": "Stale upcoming rows (game_date before the cleanup cutoff: today - {ttl} days)",
    "incident": "The incident dates (PGS players vs UPCG rows)",
}


def register(subparsers) -> None:
    """Add the seed and describe subcommands."""
    seed = subparsers.add_parser(
        "seed",
        help="(re)create a warehouse on this machine (local, emulator) with the synthetic league",
    )
    add_env(seed)
    seed.add_argument(
        "--if-missing", action="store_true",
        help="seed only when the warehouse file is missing or lacks tables",
    )  # fmt: skip
    add_lock_flag(seed)
    seed.set_defaults(func=cmd_seed)
    describe = subparsers.add_parser("describe", help="show tables, seasons, stale rows, incident")
    add_env(describe)
    describe.set_defaults(func=cmd_describe)
    unlock = subparsers.add_parser(
        "unlock", help="release the warehouse's lock held by a process on another host"
    )
    add_env(unlock)
    unlock.add_argument(
        "--lock-id", required=True,
        help="the id of the lock to release, as the refusal or `runbook describe` names it",
    )  # fmt: skip
    unlock.set_defaults(func=cmd_unlock)


def cmd_seed(args: argparse.Namespace) -> int:
    """Seed the local warehouse, then print the summary and the description."""
    params = params_from(args)
    if not params.is_local:
        raise ParamsError(
            params.source, "backend",
            f"is {params.backend!r}: `runbook seed` replaces every table, so it only writes a "
            "warehouse on this machine (the embedded DuckDB file or the emulator), never "
            "Google's BigQuery",
            "run `runbook seed --env local` or `--env emulator`, or use `runbook describe` to "
            "look at this environment",
        )  # fmt: skip
    if params.engine == "emulator":  # before the lock, which lives in the server's tables
        emulator_server.require(params.bigquery.endpoint, params.project, params.env)
    with env_lock(params, "seed", args):
        return _seed(params, args)


def _seed(params, args: argparse.Namespace) -> int:
    wh = connect(params)
    refuse_unless_local(wh)
    today = params.effective_today()
    where = warehouse_text(params)
    if args.if_missing and _is_seeded(wh, params):
        print(f"The warehouse ({where}) already holds every table; nothing changed.")
        return 0
    started = time.perf_counter()
    summary = seed_league(wh, params.tables, today, keep=(lock.LOCK_TABLE,))
    seconds = time.perf_counter() - started
    cleared = clear_checkpoints(paths.resolve(params.backfill.checkpoint_dir))
    print(
        f"Seeded the {where} in {seconds:.1f} s (today {today}); {cleared} backfill "
        f"checkpoint(s) of the old warehouse removed:"
    )
    for name, value in dataclasses.asdict(summary).items():
        shown = f"{value:,}" if isinstance(value, int) and name != "seed" else value
        print(f"  {name:<16} {shown}")
    print()
    _print_description(describe_warehouse(wh, params.tables, today), params.cleanup.ttl_days)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    """Print what the environment's warehouse holds."""
    params = params_from(args)
    wh = connect(params)
    today = params.effective_today()
    print(f"Warehouse of {params.env} ({params.backend}, project {params.project}), today {today}:")
    frames = describe_warehouse(wh, params.tables, today, params.cleanup.ttl_days)
    _print_description(frames, params.cleanup.ttl_days)
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    """Release the warehouse's lock whose id is --lock-id; a wrong id changes nothing."""
    params = params_from(args)
    held = lock.unlock(params, args.lock_id)
    if held is None:
        print(f"No lock is held on the warehouse of {params.env}; nothing changed.")
        return 0
    print(
        f"Released lock {held.get('lock_id')} of {held.get('owner')} on host {held.get('host')} "
        f"(run {held.get('run_id')}, since {held.get('since')})."
    )
    return 0


def _is_seeded(wh, params) -> bool:
    """Return whether the warehouse (its file, on DuckDB) exists and holds every declared table."""
    if wh.backend == "duckdb" and not wh.path.exists():
        return False
    with wh.session():
        return all(wh.table_exists(params.tables.id(schema)) for schema in ALL_TABLES)


def _print_description(frames: dict, ttl_days: int) -> None:
    for key, frame in frames.items():
        show(frame, _TITLES.get(key, key).format(ttl=ttl_days))
        print()
