"""Phase 03's steps: deploy the daily cleanup function, trigger it once, read what it did.

On `local` the built bundle is served by functions-framework on 127.0.0.1 and a scheduled
Pub/Sub CloudEvent is posted to it; on staging/prod the deployment plan is applied with
gcloud, the scheduler job is run once and the function's logs are read. The function's alerts go
to the params' webhook; on `local` without one, to a receiver on 127.0.0.1 that the phase runs
for as long as the function is served, so an alert the function sends is counted, not lost.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from runbook_lib.platform import deploy_plan, monitoring
from runbook_lib.platform.cloud_function import local
from runbook_lib.platform.cloud_function.gcloud import GcloudRunner
from runbook_lib.platform.deployment import DeployPlan
from runbook_lib.platform.schema import Tables
from runbook_lib.run.forkserver import ForkClient
from runbook_lib.run.params import Params
from runbook_lib.run.phase_checks import Check
from runbook_lib.warehouse.base import Warehouse

ENTRY_POINT = "cleanup_upcoming_tables"


def next_scheduled_run(params: Params) -> Params:
    """Return the params as the function sees them at its next scheduled run (tomorrow)."""
    return params.model_copy(update={"today": params.effective_today() + dt.timedelta(days=1)})


AlertChannel = monitoring.AlertChannel


@contextmanager
def alert_channel(params: Params, webhook_url: str | None = None) -> Iterator[AlertChannel]:
    """Yield where the function's alerts go (see monitoring.alert_channel)."""
    url = webhook_url or params.alerts.webhook_url
    with monitoring.alert_channel(url, params.is_local, params.contacts.named()) as ch:
        yield ch


@dataclass
class Deployment:
    """A deployed (or served) function: what was done to get there, and how to reach it."""

    env: str
    bundle: Path
    server: local.LocalFunctionServer | None = None
    plan: DeployPlan | None = None
    steps: list = field(default_factory=list)
    previous_revision: str | None = None
    applied: bool = False
    # Out of the repr: a displayed deployment must not show the webhook URL; use `alerts.label`.
    alerts: AlertChannel = field(default_factory=monitoring.NoAlertChannel, repr=False)
    alert_threshold_rows: int = 10_000
    # Where a locally served function's events come from: the params' project and topic.
    project: str = ""
    topic: str = ""
    # What deploy opened (the local receiver) and stop() closes.
    resources: ExitStack = field(default_factory=ExitStack, repr=False)

    def alerts_received(self) -> list[dict] | None:
        """Return the alerts a local receiver got, or None when delivery is not observable here."""
        return list(self.alerts.received) if isinstance(self.alerts, monitoring.Receiver) else None

    def describe(self) -> pd.DataFrame:
        """Return the deployment as a table: one row per resource and what happened to it."""
        if self.server is not None:
            return pd.DataFrame(
                [
                    {
                        "resource": "function",
                        "name": ENTRY_POINT,
                        "action": "served",
                        "where": self.server.url,
                    }
                ]
            )
        return pd.DataFrame(
            [
                {"resource": s.resource, "name": s.name, "action": s.action, "reason": s.reason}
                for s in self.steps
            ]
        )


def deploy(
    params: Params, bundle: Path, *, dry_run: bool, webhook_url: str | None = None
) -> Deployment:
    """Serve the bundle locally, or plan (and unless dry_run apply) it on GCP.

    On local the server is started and not waited for: it boots while the phase goes on, and
    `trigger` waits until it listens (a server that cannot start fails the trigger, stopped).
    Alerts go to `webhook_url`, by default the params' alerts.webhook_url; on local without
    one, to a local receiver that `stop` (or `trigger_and_stop`) closes with the server.
    """
    webhook_url = webhook_url or params.alerts.webhook_url
    if params.is_local:
        return _serve(params, bundle, webhook_url)
    config = params.function_config(webhook_url)
    plan = deploy_plan.build_plan(params.env, params.cloud_function, config, bundle)
    # The daily monitor: a second function of the same bundle, through the same plan (issue 11).
    monitor = deploy_plan.build_plan(params.env, params.monitor_function, config, bundle)
    runner = GcloudRunner(plan.project, plan.region)
    number = deploy_plan.check_gcloud_access(plan, runner)
    steps = deploy_plan.resolve(plan, runner, number)
    channel = monitoring.remote_channel(webhook_url, params.contacts.named())
    threshold = params.alerts.large_deletion_rows
    if dry_run:
        return Deployment(
            params.env,
            bundle,
            plan=plan,
            steps=steps + deploy_plan.resolve(monitor, runner, number),
            alerts=channel,
            alert_threshold_rows=threshold,
        )
    result = deploy_plan.apply(plan, runner)
    monitored = deploy_plan.apply(monitor, runner)
    return Deployment(
        params.env,
        bundle,
        plan=plan,
        steps=list(result.steps) + list(monitored.steps),
        previous_revision=result.previous_revision,
        applied=True,
        alerts=channel,
        alert_threshold_rows=threshold,
    )


def _serve(params: Params, bundle: Path, webhook_url: str | None) -> Deployment:
    resources = ExitStack()
    try:
        channel = resources.enter_context(alert_channel(params, webhook_url))
        env = next_scheduled_run(params).function_config(channel.url).to_env()
        # Not waited for: it boots while the phase goes on; trigger waits. Forked from the run's
        # fork server when this is one of its kernels (its imports loaded), else launched.
        server = local.LocalFunctionServer(bundle, ENTRY_POINT, "cloudevent", env).launch(
            ForkClient.from_env()
        )
    except BaseException:
        resources.close()
        raise
    return Deployment(
        params.env,
        bundle,
        server=server,
        applied=True,
        alerts=channel,
        alert_threshold_rows=params.alerts.large_deletion_rows,
        project=params.project,
        topic=params.cloud_function.topic,
        resources=resources,
    )


def trigger(deployment: Deployment, wait_seconds: float = 90) -> dict:
    """Trigger one scheduled run and return what the function reported."""
    if deployment.server is not None:
        attributes, data = local.pubsub_event(
            {"trigger": "scheduled"}, deployment.topic, deployment.project
        )
        headers, body = local.encode_event(attributes, data, "binary")
        status, _ = deployment.server.post(headers, body)
        # The function posts its alert before it answers, so the receiver already holds it.
        received = deployment.alerts_received()
        return {
            "http_status": status,
            "summary": _summary_line(deployment.server.output()),
            "alerts": None if received is None else [a.get("title") for a in received],
        }
    if not deployment.applied:
        return {"http_status": None, "summary": {}, "note": "dry run: nothing deployed to trigger"}
    plan = deployment.plan
    runner = GcloudRunner(plan.project, plan.region)
    run = runner.run(
        ["scheduler", "jobs", "run", plan.job, "--location", plan.region, "--project", plan.project]
    )
    time.sleep(wait_seconds)  # Cloud Scheduler -> Pub/Sub -> function: about a minute
    logs = runner.run(
        [
            "functions",
            "logs",
            "read",
            plan.function,
            "--gen2",
            "--region",
            plan.region,
            "--project",
            plan.project,
            "--limit",
            "50",
        ]
    )
    return {
        "http_status": 200 if run.returncode == 0 else run.returncode,
        "summary": _summary_line(logs.stdout),
        "logs": logs.stdout,
    }


def _summary_line(output: str) -> dict:
    for line in reversed(output.splitlines()):
        start = line.find("{")
        if start >= 0 and '"cleanup summary"' in line:
            try:
                return json.loads(line[start:])
            except json.JSONDecodeError:
                continue
    return {}


def stop(deployment: Deployment) -> str:
    """Stop what the phase started: the local server and receiver (a GCP deployment stays)."""
    if deployment.server is not None:
        deployment.server.stop(answered=True)  # the phase's own server: only it posts there
        deployment.resources.close()
        return f"local function server on {deployment.server.url} stopped"
    return "deployed function left running on its schedule"


def audit_row(wh: Warehouse, tables: Tables, run_id: str | None) -> dict:
    """Return the cleanup audit row a function run wrote, found by its run id."""
    sql = f"""
        SELECT cleanup_type, cleanup_time, trigger, status, cutoff_date, total_records_deleted,
               tables_cleaned, backups, run_id
        FROM {tables.cleanup_operations.sql}
        WHERE run_id = @run_id"""
    rows = wh.query(sql, {"run_id": str(run_id or "")})
    return rows.iloc[0].to_dict() if len(rows) else {}


def deployment_checks(deployment: Deployment) -> list[Check]:
    """Check the function was deployed or served, or (dry run) that its plan was made."""
    return [
        Check(
            "function deployed or served",
            deployment.applied or deployment.plan is not None,
            deployment.describe().to_dict("records"),
        )
    ]


def run_checks(deployment: Deployment, answer: dict, expected, after, audit: dict) -> list[Check]:
    """Return the checks of one triggered run; only the dry run's own when nothing was deployed."""
    if not deployment.applied:
        return [
            Check("dry run: plan shown, nothing deployed or triggered", True, len(deployment.steps))
        ]
    deleted = answer["summary"].get("total_records_deleted")
    return [
        Check(
            "function answered the scheduled event",
            answer["http_status"] == 200,
            answer["http_status"],
        ),
        Check(
            "function deleted exactly the stale rows it previewed",
            deleted == expected.total_stale,
            f"{deleted} of {expected.total_stale}",
        ),
        Check(
            "no stale row left for its cutoff", after.total_stale == 0, f"{after.total_stale} left"
        ),
        Check(
            "one audit row written",
            audit.get("trigger") == "scheduled"
            and audit.get("total_records_deleted") == expected.total_stale,
            {k: audit.get(k) for k in ("status", "cutoff_date", "total_records_deleted", "run_id")},
        ),
        *_alert_checks(deployment, answer),
    ]


def _alert_checks(deployment: Deployment, answer: dict) -> list[Check]:
    """Check the alert count where it can be seen: the local receiver."""
    titles = answer.get("alerts")
    if titles is None:
        return []
    deleted = answer["summary"].get("total_records_deleted") or 0
    failed = answer["http_status"] != 200
    expected = 1 if failed or deleted > deployment.alert_threshold_rows else 0
    return [
        Check(
            f"alerts sent only for a failure or more than {deployment.alert_threshold_rows:,} rows",
            len(titles) == expected,
            f"{len(titles)} alert(s) received, {expected} expected: {titles}",
        )
    ]


def trigger_and_stop(deployment: Deployment, wait_seconds: float = 90) -> dict:
    """Trigger one scheduled run, then stop what the phase started, even if the trigger failed."""
    try:
        return trigger(deployment, wait_seconds)
    finally:
        stop(deployment)


def result_record(deployment: Deployment, answer: dict, audit: dict) -> dict:
    """Return what phase 03 records for the deployment log: how, rows deleted, the audit row."""
    how = "served" if deployment.server is not None else "deployed"
    # How the local server started: forked from the run's fork server, or launched (and why).
    started = {"started": deployment.server.started} if deployment.server is not None else {}
    return {
        how: deployment.applied,
        **started,
        "rows_deleted": answer["summary"].get("total_records_deleted"),
        "alerts": {
            "channel": deployment.alerts.label,
            "received": None if answer.get("alerts") is None else len(answer["alerts"]),
        },
        "audit_row": {
            k: audit.get(k)
            for k in ("trigger", "status", "cutoff_date", "total_records_deleted", "run_id")
        },
    }
