"""`runbook function bundle|serve|plan`: build, run locally, and deploy the cleanup function."""

from __future__ import annotations

import argparse
import tempfile

from runbook_lib.cli.common import add_env, params_from
from runbook_lib.errors import DeployError
from runbook_lib.platform import deploy_plan
from runbook_lib.platform.cloud_function import local
from runbook_lib.platform.cloud_function.bundle import build_bundle
from runbook_lib.platform.cloud_function.gcloud import GcloudRunner


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `function` subcommand group."""
    group = sub.add_parser("function", help="the daily cleanup Cloud Function")
    fsub = group.add_subparsers(dest="function_command", required=True, metavar="ACTION")
    b = fsub.add_parser("bundle", help="build the source folder `gcloud functions deploy` uploads")
    b.add_argument("--out", required=True, help="folder to write the bundle to")
    b.set_defaults(func=cmd_bundle)
    s = fsub.add_parser("serve", help="serve the built bundle with functions-framework locally")
    add_env(s)
    s.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: free)")
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


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the cleanup function on 127.0.0.1 until interrupted."""
    params = params_from(args)
    if not params.is_local:
        raise DeployError(
            f"serve runs the function on this machine against the local "
            f"warehouse; {params.env!r} is not local (to fix this, use --env local)"
        )
    bundle = build_bundle(tempfile.mkdtemp(prefix="function-bundle-"))
    server = local.LocalFunctionServer(
        bundle, "cleanup_upcoming_tables", "cloudevent", local.function_env(params), port=args.port
    )
    server.start()
    print(f"Serving {bundle} at {server.url} (Pub/Sub CloudEvents; Ctrl-C to stop)")
    try:
        server.process.wait()
    finally:
        server.stop()
        print(server.output()[-4000:])
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the deployment plan; with --apply, run it after the gcloud preflight."""
    params = params_from(args)
    bundle = args.bundle or build_bundle(tempfile.mkdtemp(prefix="function-bundle-"))
    plan = deploy_plan.build_plan(params, bundle, params.alerts.webhook_url)
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
        steps = deploy_plan.resolve(plan, runner, deploy_plan.preflight(plan, runner))
    except DeployError as e:
        print(f"(cannot describe the current state: {e})")
        steps = deploy_plan.static_steps(plan)
    print(deploy_plan.format_plan(plan, steps))
    print("Dry run: nothing was changed; add --apply to run the plan.")
    return 0
