"""The `runbook` command: the only place that prints and picks exit codes.

Each group of subcommands lives in its own module with a `register(subparsers)` function.
Exit codes: 0 success, 1 a safeguard or check failed, 2 bad input (nothing changed).
"""

from __future__ import annotations

import argparse
import importlib
import sys

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


def main(argv: list[str] | None = None) -> int:
    """Run the `runbook` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except BAD_INPUT as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunbookError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing further was changed", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
