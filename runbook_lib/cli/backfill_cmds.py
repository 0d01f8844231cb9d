"""`runbook backfill`: the PCF backfill with every safeguard on.

Exit codes: 0 when every date passed; 1 when the pre-flight aborts or a date fails validation
(the original exited 0 in both cases); 2 for bad input, with nothing changed.
"""

from __future__ import annotations

import argparse
import logging
import sys

from runbook_lib.cli.common import add_env, add_lock_flag, env_lock, params_from, show
from runbook_lib.errors import CoverageValidationError, ParamsError
from runbook_lib.platform import backfill
from runbook_lib.platform.backfill_dates import date_list, requested_dates
from runbook_lib.warehouse import connect

log = logging.getLogger("runbook.backfill")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `backfill` subcommand."""
    p = sub.add_parser("backfill", help="backfill PCF for a date range or list, with safeguards")
    add_env(p)
    # Dates are parsed by the library (not argparse's type=) so a bad one is DateRangeError: exit 2.
    p.add_argument("--start-date", help="first date, YYYY-MM-DD")
    p.add_argument("--end-date", help="last date, YYYY-MM-DD (not after today)")
    p.add_argument("--dates", help="comma-separated dates instead of a range; same safeguards")
    p.add_argument(
        "--force",
        action="store_true",
        help="skip the pre-flight AND coverage validation (publishes partial dates)",
    )
    p.add_argument(
        "--allow-partial-context",
        action="store_true",
        help="go on past a pre-flight that finds partial UPCG: the PGS fallback "
        "builds those dates; validation stays on",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="report per date the counts and decision; change nothing",
    )
    p.add_argument(
        "--no-resume", action="store_true", help="delete this range's checkpoint and start fresh"
    )
    p.add_argument(
        "--status",
        action="store_true",
        help="print the checkpoint of this range (or of every range) and exit",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="date chunks processed in parallel (default: params backfill.workers)",
    )
    p.add_argument("--run-id", default=None, help="run id stamped on staging and metadata rows")
    add_lock_flag(p)
    p.set_defaults(func=cmd_backfill)


def _attach_log_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def cmd_backfill(args: argparse.Namespace) -> int:
    """Run (or describe) a backfill; return 0 only when every date passed."""
    params = params_from(args)
    if args.workers is not None and args.workers < 1:
        raise ParamsError(
            "command line",
            "--workers",
            f"must be 1 or more, got {args.workers}",
            "pass --workers 1 or more, or leave it out",
        )
    if args.status:
        return _status(params, args)
    # Bad dates are bad input (exit 2) even while another writer holds the lock.
    today = params.effective_today()
    requested_dates(params.backfill, today, args.start_date, args.end_date, args.dates)
    with env_lock(params, "backfill", args, needed=not args.dry_run):
        return _run_backfill(params, args)


def _run_backfill(params, args: argparse.Namespace) -> int:
    handler = _attach_log_handler()
    try:
        result = backfill.run_backfill(
            connect(params, run_id=args.run_id),
            params.tables,
            params.backfill,
            params.effective_today(),
            args.start_date,
            args.end_date,
            dates=args.dates,
            force=args.force,
            allow_partial_context=args.allow_partial_context,
            dry_run=args.dry_run,
            resume=not args.no_resume,
            workers=args.workers,
            run_id=args.run_id,
        )
    except CoverageValidationError as e:
        _show(
            getattr(e, "result", None)
        )  # every date's outcome, then exit 1 with the failed dates named
        raise
    finally:
        log.removeHandler(handler)
    _show(result)
    return 0


def _show(result) -> None:
    if result is None:
        return
    title = f"\nBackfill {result.run_id}{' (dry run)' if result.dry_run else ''}"
    if result.nothing_to_do:
        print(f"{title}: nothing left to do for {result.start} .. {result.end}")
    else:
        frame = result.to_frame()[
            ["game_date", "expected", "actual", "coverage_pct", "decision", "status", "error"]
        ]
        frame["coverage_pct"] = frame["coverage_pct"].round(1)
        show(frame, f"{title}:")
    print(result.carried_over())
    if result.dry_run:
        print("(dry run: no checkpoint written)")
    else:
        print(f"checkpoint: {result.checkpoint_path}")


def _status(params, args) -> int:
    """Print the checkpoint summary of the given range, or of every checkpoint file."""
    from runbook_lib import paths
    from runbook_lib.platform.checkpoint import Checkpoint

    if args.start_date or args.end_date or args.dates:
        first, last, _ = requested_dates(
            params.backfill, params.effective_today(), args.start_date, args.end_date, args.dates
        )
        dates = date_list(args.dates) if args.dates else None
        checkpoints = [backfill.open_checkpoint(params.backfill, first, last, dates)]
    else:
        folder = paths.resolve(params.backfill.checkpoint_dir)
        checkpoints = [Checkpoint(p, None, None) for p in sorted(folder.glob("*.json"))]
    if not checkpoints:
        print(f"no checkpoints in {paths.resolve(params.backfill.checkpoint_dir)}")
    for cp in checkpoints:
        if not cp.path.exists():
            print(f"no checkpoint yet: {cp.path}")
            continue
        s = cp.summary()
        print(
            f"{s['path']}\n  range {s['start_date']} .. {s['end_date']}, updated "
            f"{s['last_updated']}\n  successful {s['successful']}, failed {s['failed']}, "
            f"skipped {s['skipped']}, last success {s['last_successful_date']}"
        )
        for day, error in s["failed_dates"].items():
            print(f"  ✗ {day}: {error}")
    return 0
