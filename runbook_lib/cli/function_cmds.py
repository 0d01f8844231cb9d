"""`runbook function bundle|serve|plan`: build, run locally, and deploy the cleanup function."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from contextlib import contextmanager

from runbook_lib.cli.common import add_env, add_lock_flag, env_lock, params_from
from runbook_lib.errors import DeployError
from runbook_lib.platform import deploy_plan
from runbook_lib.platform.cloud_function import local
from runbook_lib.platform.cloud_function.bundle import build_bundle
from runbook_lib.platform.cloud_function.gcloud import GcloudRunner
from runbook_lib.secrets import redact_known


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `function` subcommand group."""
    group = sub.add_parser("function", help="the daily cleanup Cloud Function")
    fsub = group.add_subparsers(dest="function_command", required=True, metavar="ACTION")
    b = fsub.add_parser("bundle", help="build the source folder `gcloud functions deploy` uploads")
    b.add_argument("--out", required=True, help="folder to write the bundle to")
    b.set_defaults(func=cmd_bundle)
    s = fsub.add_parser(
        "serve", help="serve the bundle and its health endpoint with functions-framework"
    )
    add_env(s)
    s.add_argument(
        "--port",
        type=int,
        default=None,
        help="CloudEvent port on 127.0.0.1 (default: free); health takes the next free one",
    )
    add_lock_flag(s)
    s.set_defaults(func=cmd_serve)
    p = fsub.add_parser("plan", help="show (or --apply) the idempotent deployment plan")
    add_env(p)
    p.add_argument("--apply", action="store_true", help="run the plan with gcloud")
    p.add_argument("--bundle", default=None, help="a built bundle (default: build one now)")
    p.set_defaults(func=cmd_plan)


def cmd_bundle(args: argparse.Namespace) -> int:
    """Build the bundle and list what it holds."""
    dest = build_bundle(args.out)
    print(f"Built {dest}:")
    for path in sorted(p for p in dest.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        print(f"  {path.relative_to(dest)}")
    return 0


class _Stopped(Exception):
    """A stop signal arrived while serving."""


@contextmanager
def _stop_on_signals():
    """Turn SIGTERM and SIGINT into an exception so `finally` stops the child servers."""

    signals = (signal.SIGTERM, signal.SIGINT)

    def handler(signum, frame):
        for sig in signals:  # a second signal must not interrupt the stopping itself
            signal.signal(sig, signal.SIG_IGN)
        raise _Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the cleanup function and its health endpoint on 127.0.0.1 until stopped."""
    params = params_from(args)
    if not params.is_local:
        raise DeployError(
            f"serve runs the function on this machine against the local "
            f"warehouse; {params.env!r} is not local (to fix this, use --env local)"
        )
    # The served function deletes rows of the local warehouse: it writes, so it holds the lock.
    with (
        env_lock(params, "function-serve", args),
        tempfile.TemporaryDirectory(prefix="function-bundle-") as folder,
        _stop_on_signals(),
    ):
        servers = []
        try:
            bundle = build_bundle(folder, params.engine)
            servers = local.serve_bundle(bundle, params.function_config().to_env(), args.port)
            events, health = servers
            print(f"Serving {bundle}", flush=True)
            print(f"  Pub/Sub CloudEvents: {events.url}", flush=True)
            print(f"  health:              {health.url}", flush=True)
            print("Ctrl-C or SIGTERM stops both.", flush=True)
            while all(s.process.poll() is None for s in servers):
                time.sleep(0.5)
            print("a server exited on its own; stopping the other", file=sys.stderr)
            code = 1
        except _Stopped as e:
            print(f"{e} received: stopping the servers")
            code = 0
        finally:
            for server in servers:
                server.stop()
            for server in servers:
                print(server.output()[-4000:])
    return code


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the deployment plan; with --apply, run it after the gcloud access check."""
    params = params_from(args)
    if args.bundle:
        return _plan(args, params, args.bundle)
    # gcloud uploads --source during the deploy command, so the folder can go right after.
    with tempfile.TemporaryDirectory(prefix="function-bundle-") as folder:
        return _plan(args, params, build_bundle(folder))


def _plan(args: argparse.Namespace, params, bundle) -> int:
    plan = deploy_plan.build_plan(
        params.env, params.cloud_function, params.function_config(), bundle
    )
    runner = GcloudRunner(plan.project, plan.region)
    if args.apply:
        result = deploy_plan.apply(plan, runner)
        print(deploy_plan.format_plan(plan, list(result.steps)))
        print(
            f"Applied {len(result.executed)} command(s); serving revision before the deploy: "
            f"{result.previous_revision or 'none'}"
        )
        return 0
    try:
        steps = deploy_plan.resolve(plan, runner, deploy_plan.check_gcloud_access(plan, runner))
    except DeployError as e:
        print(f"(cannot describe the current state: {redact_known(str(e), plan.env_vars)})")
        steps = deploy_plan.static_steps(plan)
    print(deploy_plan.format_plan(plan, steps))
    print("Dry run: nothing was changed; add --apply to run the plan.")
    return 0
