"""The `runbook` command: the only place that prints and picks exit codes.

Each group of subcommands lives in its own module with a `register(subparsers)` function.
Exit codes: 0 success, 1 a safeguard or check failed, 2 bad input (nothing changed), 130 and
143 interrupted by Ctrl-C and SIGTERM (the running step stopped, the lock released).
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from runbook_lib.errors import (
    ConfirmationRequired,
    DateRangeError,
    EnvironmentMismatchError,
    InvalidIdentifierError,
    LockIdMismatchError,
    ParamsError,
    RunbookError,
    RunDirError,
    UnknownEnvironmentError,
)

MODULES = (
    "warehouse_cmds", "backfill_cmds", "cleanup_cmds", "run_cmds", "lab_cmds", "function_cmds",
    "monitor_cmds",
    "emulator_cmds", "schema_cmds",
)
BAD_INPUT = (
    ParamsError, UnknownEnvironmentError, InvalidIdentifierError, DateRangeError,
    ConfirmationRequired, EnvironmentMismatchError, LockIdMismatchError, RunDirError,
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand module that is present registered."""
    parser = argparse.ArgumentParser(
        prog="runbook", description="The backfill-safeguards deployment runbook, executable."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in MODULES:
        try:
            module = importlib.import_module(f"runbook_lib.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"runbook_lib.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so it unwinds as Ctrl-C does."""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` for the block (main thread only), then restore it.

    By default SIGTERM ends the process on the spot: the running phase's kernel was left to die
    alone and the warehouse lock stayed behind. Raised instead, every `finally` runs: the kernel
    is shut down, the lock released, and `runbook resume` finds the phase without a record.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Run the `runbook` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _sigterm_unwinds():
            code = args.func(args)
    except BAD_INPUT as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunbookError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        by = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
        print(
            f"interrupted by {by}: the running step was stopped, its kernel shut down and the "
            f"lock released; nothing further was changed (to go on with a run, `runbook resume "
            f"RUN_DIR`)",
            file=sys.stderr,
        )
        return 143 if isinstance(e, Terminated) else 130
    return int(code or 0)


def entry() -> NoReturn:
    """The `runbook` console command: `main`, then the process ends without its teardown.

    A process that loaded pandas, DuckDB, Jupyter's client and papermill spends a long time
    freeing its modules one by one at exit, after its work is done (bench/bench_cli_exit.py;
    figures in bench/README.md, "Command exit"). The atexit handlers still run (temporary
    folders, the flush of logging), the output is flushed, and the exit code is main's. With a
    thread still running, the process exits as Python does, waiting for it.
    """
    code = main()
    if threading.active_count() == 1:
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed, or a reader gone: nothing left to say
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
