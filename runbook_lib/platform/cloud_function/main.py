"""The daily cleanup of the upcoming tables, as a Cloud Function (gen2, Pub/Sub trigger).

Fixes of the original (original-system.md 3.4): the entry point has the Pub/Sub CloudEvent
signature its `--trigger-topic` deployment calls; the configuration comes from environment
variables (the original set GCP_PROJECT_ID and never read it); the cleanup is the same core as
`runbook cleanup` (cutoff once, verified backups, exact delete, verification); the audit row
goes to `cleanup_operations` with the declared schema; a failure answers HTTP 500, not 200.

Environment variables:
    GCP_PROJECT_ID        project of the warehouse (required)
    DATASET               analytics dataset holding UPCG and UTCG (default nba_analytics)
    AUDIT_DATASET         orchestration dataset of cleanup_operations (default nba_orchestration)
    TTL_DAYS              days of upcoming rows to keep (default 7, >= 1)
    MAX_DELETE_FRACTION   cap on the share of a table one run may delete (default 0.9)
    ALERT_THRESHOLD_ROWS  alert when more rows than this are deleted (default 10000)
    ALERT_WEBHOOK_URL     where alerts are POSTed as JSON (optional)
    WAREHOUSE_BACKEND     bigquery (default) or duckdb for local runs
    WAREHOUSE_DIR         the DuckDB warehouse folder (duckdb only)
    CLEANUP_TODAY         fixed "today" (YYYY-MM-DD) for local runs; default the UTC date
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

import functions_framework
import pandas as pd

from runbook_lib import secrets
from runbook_lib.errors import ParamsError
from runbook_lib.platform import cleanup
from runbook_lib.run.params import Params, parse_params
from runbook_lib.warehouse import connect

log = logging.getLogger("upcoming_tables_cleanup")
logging.basicConfig(level=logging.INFO, format="%(message)s")

FUNCTION = "upcoming_tables_cleanup"
VERSION = "2.0"
SOURCE = "environment variables"


@dataclass(frozen=True)
class FunctionConfig:
    """The function's configuration, read from environment variables."""

    params: Params
    alert_threshold_rows: int
    webhook_url: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FunctionConfig:
        """Read and validate the configuration; a bad value names its variable."""
        env = os.environ if environ is None else environ
        project = env.get("GCP_PROJECT_ID") or env.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise ParamsError(
                SOURCE,
                "GCP_PROJECT_ID",
                "not set",
                "set GCP_PROJECT_ID=<project> in the function's environment "
                "(`runbook function plan --env ENV --apply` sets it)",
            )
        backend = env.get("WAREHOUSE_BACKEND", "bigquery")
        overrides = {
            "env": "function",
            "backend": backend,
            "project": project,
            "datasets.analytics": env.get("DATASET", "nba_analytics"),
            "datasets.orchestration": env.get("AUDIT_DATASET", "nba_orchestration"),
            "datasets.precompute": "nba_precompute",
            "datasets.reference": "nba_reference",
            "cleanup.ttl_days": _number(env, "TTL_DAYS", int, 7),
            "cleanup.max_delete_fraction": _number(env, "MAX_DELETE_FRACTION", float, 0.9),
            "cleanup.backup_retention_days": _number(env, "BACKUP_RETENTION_DAYS", int, 30),
            "today": env.get("CLEANUP_TODAY") or None,
        }
        if backend == "duckdb":
            overrides["warehouse_dir"] = env.get("WAREHOUSE_DIR", "outputs/local/warehouse")
        params = parse_params("{}", SOURCE, overrides)
        return cls(
            params,
            _number(env, "ALERT_THRESHOLD_ROWS", int, 10_000),
            env.get("ALERT_WEBHOOK_URL") or None,
        )


def _number(env: Mapping[str, str], name: str, kind: type, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ParamsError(
            SOURCE,
            name,
            f"{raw!r} is not a {kind.__name__}",
            f"set {name} to a number, e.g. {default}",
        ) from None


def run_cleanup(
    config: FunctionConfig, *, trigger: str = "scheduled", run_id: str | None = None
) -> dict:
    """Plan and apply one scheduled cleanup; return its JSON summary, alert when it is large.

    A scheduled run confirms with its own plan's tokens: nobody is there to type them, and the
    plan still binds the delete to the previewed counts and the cap.
    """
    params = config.params
    started = dt.datetime.now(dt.UTC)
    log.info("UPCOMING TABLES TTL CLEANUP - SCHEDULED RUN (project %s)", params.project)
    wh = connect(params, run_id=run_id)
    plan = None
    try:
        plan = cleanup.plan_cleanup(
            wh,
            params.tables,
            params.effective_today(),
            params.cleanup.ttl_days,
            params.cleanup.max_delete_fraction,
            env=params.env,
        )
        log.info("TTL cutoff date: %s", plan.cutoff)
        result = cleanup.apply_cleanup(
            wh,
            params.tables,
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
        send_alert(config, "Upcoming Tables Cleanup Failed", summary)
        raise
    # Only after a verified, successful run: yesterday's backups are this run's safety net.
    pruned = cleanup.prune_backups(wh, params.tables, params.cleanup.backup_retention_days, started)
    summary = {
        **result.to_dict(),
        "backups_pruned": [str(b) for b in pruned],
        "function": FUNCTION,
        "cleanup_time": started.isoformat(),
        "trigger": trigger,
        "run_id": run_id,
    }
    if result.total_deleted > config.alert_threshold_rows:
        summary["alerted"] = send_alert(config, "Unusually Large Deletion", summary)
    else:
        log.info("Normal cleanup: %s records deleted", result.total_deleted)
    log.info("CLEANUP COMPLETE - Duration: %.2fs", result.duration_seconds)
    return summary


def _audit_failed_plan(wh, config, trigger, run_id, started, error) -> None:
    params = config.params
    try:
        cutoff = cleanup.cutoff_for(params.effective_today(), params.cleanup.ttl_days)
        plan = cleanup.CleanupPlan(
            params.effective_today(),
            params.cleanup.ttl_days,
            cutoff,
            params.cleanup.max_delete_fraction,
            (),
            pd.DataFrame(),
        )
        result = cleanup.CleanupResult(plan, False, "failed", (), (str(error),))
        cleanup.write_audit(
            wh,
            params.tables,
            result,
            trigger=trigger,
            run_id=run_id,
            now=started,
            errors=[str(error)],
        )
    except Exception:  # noqa: BLE001 - the original failure is the one to report
        log.exception("could not write the audit row of the failed run")


def send_alert(config: FunctionConfig, title: str, summary: dict) -> bool:
    """POST an alert as JSON to the webhook; return whether it was delivered."""
    if not config.webhook_url:
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
    request = urllib.request.Request(
        config.webhook_url,
        data=json.dumps(body, default=str).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - https/http only
            return 200 <= response.status < 300
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


def _run_id(cloud_event, now: dt.datetime) -> str:
    event_id = re.sub(r"[^A-Za-z0-9]", "", str(cloud_event["id"]))[:24]
    return f"{now:%Y%m%d_%H%M%S}_{event_id}" if event_id else f"{now:%Y%m%d_%H%M%S}"


@functions_framework.cloud_event
def cleanup_upcoming_tables(cloud_event) -> dict:
    """Run the scheduled cleanup for one Pub/Sub CloudEvent and log its JSON summary."""
    config = FunctionConfig.from_env()
    run_id = _run_id(cloud_event, dt.datetime.now(dt.UTC))
    summary = run_cleanup(config, trigger=trigger_of(cloud_event), run_id=run_id)
    # One JSON line: Cloud Logging parses it into jsonPayload for queries and alerts.
    print(json.dumps({"severity": "INFO", "message": "cleanup summary", **summary}, default=str))
    return summary


@functions_framework.http
def health(request):
    """Answer a health check with the function's name, version and configured project."""
    try:
        project = FunctionConfig.from_env().params.project
    except ParamsError as e:
        return {
            "status": "unhealthy",
            "function": FUNCTION,
            "version": VERSION,
            "error": str(e),
        }, 500
    return {"status": "healthy", "function": FUNCTION, "version": VERSION, "project": project}
