"""Arguments and helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from runbook_lib.errors import DateRangeError
from runbook_lib.run.params import Params, load_params


def add_env(parser: argparse.ArgumentParser) -> None:
    """Add --env and --today to a subcommand."""
    parser.add_argument("--env", required=True, help="environment: a params/<env>.yaml file")
    # Parsed in params_from, not by argparse: argparse turns a bad value into a traceback-free
    # usage error only for ValueError, and our DateRangeError says how to fix it.
    parser.add_argument(
        "--today",
        default=None,
        help="override the params' today (YYYY-MM-DD); every cutoff is computed from it",
    )


def params_from(args: argparse.Namespace) -> Params:
    """Load the params of --env, with --today applied."""
    today = getattr(args, "today", None)
    overrides = {"today": parse_date(today, "--today").isoformat()} if today else None
    return load_params(args.env, overrides)


def parse_date(text: str, flag: str | None = None) -> dt.date:
    """Parse YYYY-MM-DD or raise DateRangeError naming the flag (if given) and the bad value."""
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError) as e:
        where = f"{flag}: " if flag else ""
        # fromisoformat says why a well-formed value is no date ("month must be in 1..12").
        why = f": {e}" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(text)) else ""
        raise DateRangeError(
            f"{where}{text!r} is not a date{why}",
            "write dates as YYYY-MM-DD, for example 2023-02-23",
        ) from None


def show(df: pd.DataFrame, title: str | None = None) -> None:
    """Print a DataFrame as a plain table."""
    if title:
        print(title)
    print(df.to_string(index=False) if len(df) else "  (none)")


def add_lock_flag(parser: argparse.ArgumentParser) -> None:
    """Add --break-stale-lock to a subcommand that writes the warehouse."""
    parser.add_argument(
        "--break-stale-lock",
        action="store_true",
        help="take over the warehouse's lock if its holder is gone (same host and its process "
        "dead, or past its expiry on BigQuery)",
    )


@contextmanager
def env_lock(
    params: Params, command: str, args: argparse.Namespace, needed: bool = True
) -> Iterator[None]:
    """Hold the warehouse's lock (the one `runbook run` takes) while a command changes data.

    One writer per warehouse: a command started while a run or another command writes the
    same warehouse (under any environment name) is refused with the holder's owner, run and
    lock id, instead of racing it. Inside the run that holds the lock it goes on.
    """
    if not needed:
        yield
        return
    from runbook_lib.run import lock

    run_id = getattr(args, "run_id", None) or f"cli-{command}-{os.getpid()}"
    with lock.warehouse_lock(params, run_id, getattr(args, "break_stale_lock", False)):
        yield
