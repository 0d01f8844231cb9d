"""`runbook monitor`: the daily checks of coverage from the data itself, and their alerts.

Exit codes: 0 healthy; 1 alerting (a check found a problem); 2 bad input, nothing changed.
"""

from __future__ import annotations

import argparse
import datetime as dt

from runbook_lib.cli.common import add_env, add_lock_flag, env_lock, params_from, parse_date, show
from runbook_lib.errors import ParamsError
from runbook_lib.platform import monitor, monitoring
from runbook_lib.warehouse import connect


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `monitor` subcommand."""
    p = sub.add_parser(
        "monitor",
        help="check yesterday (or --date) and the trailing window: freshness, coverage from "
        "the data, box scores on game days, stale upcoming rows; alert each problem once a day",
    )
    add_env(p)
    p.add_argument("--date", default=None, help="the day to check, YYYY-MM-DD (default: yesterday)")
    p.add_argument("--window-days", type=int, default=30, help="trailing window (default 30)")
    p.add_argument(
        "--no-alert",
        action="store_true",
        help="only report: send no alert and write nothing to the warehouse",
    )
    p.add_argument(
        "--followup",
        action="store_true",
        help="then follow up the latest DEPLOYED run of this environment (`runbook followup`)",
    )
    add_lock_flag(p)
    p.set_defaults(func=cmd_monitor)


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run the monitor; return 0 when healthy and 1 when alerting."""
    params = params_from(args)
    today = params.effective_today()
    if args.date is not None:
        today = parse_date(args.date, "--date") + dt.timedelta(days=1)
    if args.window_days < 1:
        raise ParamsError(
            "command line",
            "--window-days",
            f"must be 1 or more, got {args.window_days}",
            "pass --window-days 1 or more, or leave it out",
        )
    settings = monitor.settings_for(
        params.alerts, params.backfill, params.cleanup, args.window_days
    )
    wh = connect(params)
    result = monitor.check(wh, params.tables, settings, today, params.env)
    if not args.no_alert:
        with env_lock(params, "monitor", args):
            channel = monitoring.remote_channel(params.alerts.webhook_url, params.contacts.named())
            monitor.alert(wh, params.tables, result, channel)
            monitor.record(wh, params.tables, result)
    _print(result, alerted=not args.no_alert)
    if args.followup:
        _followup(params.env, args)
    return 0 if result.healthy else 1


def _followup(env: str, args: argparse.Namespace) -> None:
    from runbook_lib.run import followup

    run_dir = followup.latest_deployed(env)
    if run_dir is None:
        print(f"followup: no DEPLOYED run of {env} is waiting for evidence")
        return
    followup.followup(run_dir, break_stale_lock=args.break_stale_lock)
    word, why = followup.verdict(run_dir)
    print(f"followup of {run_dir}: {word}: {why}")


def _print(result: monitor.MonitorResult, alerted: bool) -> None:
    print(result.headline())
    if not result.healthy:
        show(result.to_frame() if alerted else result.to_frame().drop(columns="alert"))
    if alerted:
        print(
            f"alerts: {len(result.sent)} sent, {len(result.already_alerted)} already sent "
            f"today, {len(result.undelivered)} not delivered (channel: {result.channel})"
        )
