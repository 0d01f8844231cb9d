"""`runbook emulator start|stop|status`: the emulator environment's BigQuery-API server."""

from __future__ import annotations

import argparse

from runbook_lib.cli.common import add_env, params_from
from runbook_lib.errors import ParamsError
from runbook_lib.warehouse import emulator_server


def register(subparsers) -> None:
    """Add the emulator subcommand and its actions."""
    parser = subparsers.add_parser(
        "emulator", help="start, stop or show the BigQuery-API server of --env emulator"
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    add_env(parser)
    parser.set_defaults(func=cmd_emulator)


def _server_params(args: argparse.Namespace):
    params = params_from(args)
    if params.engine != "emulator":
        raise ParamsError(
            params.source, "bigquery.endpoint",
            f"is not set: {params.env!r} has no BigQuery-API server on this machine to "
            f"{args.action}",
            "use --env emulator (params/emulator.yaml names its server's endpoint)",
        )  # fmt: skip
    return params


def cmd_emulator(args: argparse.Namespace) -> int:
    """Start, stop or show the server; print what it did."""
    params = _server_params(args)
    endpoint, data_dir = params.bigquery.endpoint, params.warehouse_path
    if args.action == "start":
        info, started = emulator_server.start(endpoint, data_dir, params.project)
        verb = "Started" if started else "Already running:"
        print(
            f"{verb} the BigQuery-API server (bqemulator) at {info.endpoint}, pid {info.pid}, "
            f"data in {info.data_dir}, log {info.log}."
        )
        print(
            f"Next: `runbook seed --env {params.env}`, then `runbook run --env {params.env}`; "
            f"`runbook emulator stop --env {params.env}` when done."
        )
        return 0
    if args.action == "stop":
        info = emulator_server.stop(data_dir)
        if info is None:
            print(f"No server started for {data_dir} is running; nothing stopped.")
        else:
            print(
                f"Stopped the server at {info.endpoint} (pid {info.pid}); its data stays in "
                f"{info.data_dir}."
            )
        return 0
    info = emulator_server.running(data_dir)
    answering = emulator_server.answers(endpoint, params.project)
    print(
        f"{endpoint}: {'answers' if answering else 'does not answer'}; "
        + (f"started by pid {info.pid}" if info else "no server started for this data")
    )
    return 0 if answering else 1
