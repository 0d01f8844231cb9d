"""The daily cleanup of the upcoming tables, as a Cloud Function (gen2, Pub/Sub trigger).

Fixes of the original (original-system.md 3.4): the entry point has the Pub/Sub CloudEvent
signature its `--trigger-topic` deployment calls; the configuration comes from environment
variables (the original set GCP_PROJECT_ID and never read it); the cleanup is the same core as
`runbook cleanup` (cutoff once, verified backups, exact delete, verification); the audit row
goes to `cleanup_operations` with the declared schema; a failure answers HTTP 500, not 200.

Its configuration, and the environment variables that carry it: cloud_function/config.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging

import functions_framework
import pandas as pd

from runbook_lib import clock, secrets
from runbook_lib.config import BackfillConfig
from runbook_lib.errors import ParamsError
from runbook_lib.platform import cleanup, monitor, monitoring, webhook
from runbook_lib.platform.cloud_function.config import FunctionConfig
from runbook_lib.warehouse import connect

log = logging.getLogger("upcoming_tables_cleanup")
logging.basicConfig(level=logging.INFO, format="%(message)s")

FUNCTION = "upcoming_tables_cleanup"
MONITOR_FUNCTION = "backfill_coverage_monitor"
VERSION = "2.0"


def run_cleanup(
    config: FunctionConfig, *, trigger: str = "scheduled", run_id: str | None = None
) -> dict:
    """Plan and apply one scheduled cleanup; return its JSON summary, alert when it is large.

    A scheduled run confirms with its own plan's tokens: nobody is there to type them, and the
    plan still binds the delete to the previewed counts and the cap.
    """
    started = dt.datetime.now(dt.UTC)
    log.info("UPCOMING TABLES TTL CLEANUP - SCHEDULED RUN (project %s)", config.warehouse.project)
    wh = connect(config.warehouse, run_id=run_id)
    plan = None
    try:
        # One connection for the plan and its apply (on the local warehouse each connection
        # opened alone is a DuckDB instance), inside the try: a refused one is a failed run.
        with wh.session():
            plan = cleanup.plan_cleanup(
                wh,
                config.tables,
                config.effective_today(),
                config.cleanup.ttl_days,
                config.cleanup.max_delete_fraction,
                env=config.env,
            )
            log.info("TTL cutoff date: %s", plan.cutoff)
            result = cleanup.apply_cleanup(
                wh,
                config.tables,
                plan,
                confirm=plan.tokens,
                run_id=run_id,
                trigger=trigger,
                now=started,
            )
    except Exception as e:
        if plan is None:  # apply_cleanup audits its own failures; a failed plan is audited here
            _audit_failed_plan(wh, config, trigger, run_id, started, e)
        summary = {
            "status": "error",
            # The summary is posted to the webhook and logged: an echoed credential is redacted.
            "message": secrets.redacted(str(e)),
            "function": FUNCTION,
            "cleanup_time": started.isoformat(),
            "trigger": trigger,
        }
        alert(config, "Upcoming Tables Cleanup Failed", summary)
        raise
    # Only after a verified, successful run: yesterday's backups are this run's safety net.
    with wh.session():
        pruned = cleanup.prune_backups(
            wh, config.tables, config.cleanup.backup_retention_days, started
        )
    summary = {
        **result.to_dict(),
        "backups_pruned": [str(b) for b in pruned],
        "function": FUNCTION,
        "cleanup_time": started.isoformat(),
        "trigger": trigger,
        "run_id": run_id,
    }
    if result.total_deleted > config.alerts.large_deletion_rows:
        summary["alerted"] = alert(config, "Unusually Large Deletion", summary)
    else:
        log.info("Normal cleanup: %s records deleted", result.total_deleted)
    log.info("CLEANUP COMPLETE - Duration: %.2fs", result.duration_seconds)
    return summary


def _audit_failed_plan(wh, config: FunctionConfig, trigger, run_id, started, error) -> None:
    try:
        cutoff = cleanup.cutoff_for(config.effective_today(), config.cleanup.ttl_days)
        plan = cleanup.CleanupPlan(
            config.effective_today(),
            config.cleanup.ttl_days,
            cutoff,
            config.cleanup.max_delete_fraction,
            (),
            pd.DataFrame(),
        )
        result = cleanup.CleanupResult(plan, False, "failed", (), (str(error),))
        cleanup.write_audit(
            wh,
            config.tables,
            result,
            trigger=trigger,
            run_id=run_id,
            now=started,
            errors=[str(error)],
        )
    except Exception:  # noqa: BLE001 - the original failure is the one to report
        log.exception("could not write the audit row of the failed run")


def alert(config: FunctionConfig, title: str, summary: dict) -> bool:
    """Send the function's alert about `summary` to its webhook; return whether it was delivered."""
    if not config.alerts.webhook_url:
        log.warning("ALERT (no webhook configured): %s", title)
        return False
    body = {
        "title": title,
        "severity": "warning",
        "function": FUNCTION,
        "text": f"{title}: {summary.get('total_records_deleted', 0)} records deleted"
        + (f"; error: {summary['message']}" if "message" in summary else ""),
        "recommendation": "check the preview per date and the backups listed in the summary",
        "summary": summary,
    }
    try:
        sent = webhook.send_alert(config.alerts.webhook_url, body, contacts=config.contacts)
        return 200 <= sent < 300
    except OSError:
        log.exception("alert %r could not be delivered to the webhook", title)
        return False


def trigger_of(cloud_event) -> str:
    """Return the trigger named in the Pub/Sub message body, 'scheduled' by default."""
    try:
        message = (cloud_event.data or {}).get("message", {})
        body = json.loads(base64.b64decode(message.get("data", "")) or b"{}")
        trigger = body.get("trigger", "scheduled")
    except (ValueError, AttributeError, TypeError):
        return "scheduled"
    return trigger if trigger in cleanup.TRIGGERS else "scheduled"


def _run_id(cloud_event) -> str:
    """Return the run id of one event: the time, then the event's id (letters and digits)."""
    return clock.new_run_id(tail=clock.run_tag(str(cloud_event["id"])))


@functions_framework.cloud_event
def cleanup_upcoming_tables(cloud_event) -> dict:
    """Run the scheduled cleanup for one Pub/Sub CloudEvent and log its JSON summary."""
    config = FunctionConfig.from_env()
    run_id = _run_id(cloud_event)
    summary = run_cleanup(config, trigger=trigger_of(cloud_event), run_id=run_id)
    # One JSON line: Cloud Logging parses it into jsonPayload for queries and alerts.
    print(json.dumps({"severity": "INFO", "message": "cleanup summary", **summary}, default=str))
    return summary


def run_monitor(config: FunctionConfig, *, run_id: str | None = None) -> dict:
    """Run the daily monitor: the four checks, one alert per new problem, the run recorded."""
    wh = connect(config.warehouse, run_id=run_id)
    settings = monitor.settings_for(config.alerts, BackfillConfig(), config.cleanup)
    env = config.runbook_env or config.env
    with wh.session():  # one connection for the check, its alerts and its record
        result = monitor.check(wh, config.tables, settings, config.effective_today(), env)
        channel = monitoring.remote_channel(config.alerts.webhook_url, config.contacts)
        monitor.alert(wh, config.tables, result, channel, run_id=run_id)
        monitor.record(wh, config.tables, result, run_id=run_id)
    return {
        "status": "healthy" if result.healthy else "alerting",
        "function": MONITOR_FUNCTION,
        "headline": result.headline(),
        "problems": [p.key for p in result.problems],
        "alerts_sent": len(result.sent),
        "run_id": run_id,
    }


@functions_framework.cloud_event
def monitor_backfill_coverage(cloud_event) -> dict:
    """Run the daily monitor for one Pub/Sub CloudEvent and log its JSON summary."""
    summary = run_monitor(FunctionConfig.from_env(), run_id=_run_id(cloud_event))
    print(json.dumps({"severity": "INFO", "message": "monitor summary", **summary}, default=str))
    return summary


@functions_framework.http
def health(request):
    """Answer a health check with the function's name, version and configured project."""
    try:
        project = FunctionConfig.from_env().warehouse.project
    except ParamsError as e:
        return {
            "status": "unhealthy",
            "function": FUNCTION,
            "version": VERSION,
            "error": str(e),
        }, 500
    return {"status": "healthy", "function": FUNCTION, "version": VERSION, "project": project}
