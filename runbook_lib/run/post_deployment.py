"""Phase 06, post-deployment: the seed's 1 h / 24 h / first-week checks and success criteria.

Each check is computed from what exists: the run's own phase results, the backfill metadata
the backfill writes per date, and the cleanup audit rows. A check whose window has not yet
elapsed with too little evidence is PENDING, never passed; rerun phase 06 on the same run later.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from runbook_lib import clock
from runbook_lib.platform.schema import Tables
from runbook_lib.run import attempts, manifest
from runbook_lib.run.phase import read_results
from runbook_lib.statuses import CheckStatus, DateStatus, PhaseStatus
from runbook_lib.warehouse.base import Warehouse, one_connection

# Notebook 06 reads the statuses by these names.
PASS, FAIL, PENDING = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.PENDING
PHASES = (
    "00_preflight",
    "01_code_deployment",
    "02_data_cleanup",
    "03_cloud_function",
    "04_integration_test",
    "05_monitoring",
)


def phase_results(run_dir: Path) -> dict[str, dict]:
    """Return the results document of each phase that wrote one in `run_dir`."""
    return {p: doc for p in PHASES if (doc := read_results(run_dir, p))}


def _ok(doc: dict | None) -> bool:
    return bool(doc) and doc.get("status") == PhaseStatus.SUCCEEDED


def backfills_after(
    wh: Warehouse, tables: Tables, today: dt.date, days: int, since: dt.datetime, exclude_run: str
) -> pd.DataFrame:
    """Return the latest metadata row per date of the last `days` days, written by a backfill
    that ran after `since` and is not `exclude_run` (the deployment run's own backfills)."""
    sql = f"""
        SELECT analysis_date, expected_players, actual_players, coverage_pct, status, run_id
        FROM {tables.backfill_metadata.sql}
        WHERE analysis_date >= DATE_SUB(@today, INTERVAL @days DAY) AND analysis_date < @today
          AND status != 'SKIPPED' AND tracked_at >= @since AND run_id != @run_id
        QUALIFY ROW_NUMBER() OVER (PARTITION BY analysis_date ORDER BY tracked_at DESC) = 1
        ORDER BY analysis_date"""
    return wh.query(sql, {"today": today, "days": int(days), "since": since, "run_id": exclude_run})


def scheduled_cleanups(
    wh: Warehouse, tables: Tables, since: dt.datetime, exclude_run: str
) -> pd.DataFrame:
    """Return the function's scheduled runs (audit rows) since a time, but the one phase 03 fired."""
    sql = f"""
        SELECT cleanup_time, status, total_records_deleted, cutoff_date, run_id
        FROM {tables.cleanup_operations.sql}
        WHERE trigger = 'scheduled' AND cleanup_time >= @since AND run_id != @run_id
        ORDER BY cleanup_time"""
    return wh.query(sql, {"since": since, "run_id": exclude_run})


def monitor_runs_after(
    wh: Warehouse, tables: Tables, since: dt.datetime, exclude_run: str
) -> pd.DataFrame:
    """Return the monitor's runs since a time, but the deployment's own (phase 05), oldest first."""
    empty = pd.DataFrame(columns=["monitor_day", "checked_at", "game_dates", "problems", "run_id"])
    if not wh.table_exists(tables.monitor_runs):  # no monitor has run here yet
        return empty
    sql = f"""
        SELECT monitor_day, checked_at, game_dates, problems, run_id
        FROM {tables.monitor_runs.sql}
        WHERE checked_at >= @since
          AND (run_id IS NULL OR (run_id != @run_id AND NOT ENDS_WITH(run_id, @tag)))
        ORDER BY checked_at"""
    # Phase 05 triggers the monitor's function with the run's tag as its event id: its run is
    # the deployment's own too, not evidence (monitor_phase.MonitorFunction.trigger).
    tag = "-" + clock.run_tag(exclude_run)
    return wh.query(sql, {"since": since, "run_id": exclude_run, "tag": tag})


def monitor_status(runs: pd.DataFrame) -> tuple[str, str]:
    """Return (status, evidence) of the monitor since the deployment: its latest run decides."""
    if runs.empty:
        return PENDING, "waiting for the daily monitor's first run after the deployment"
    last = runs.iloc[-1]
    evidence = (
        f"{len(runs)} monitor run(s) since the deployment; the latest ({last['monitor_day']}) "
        f"found {int(last['problems'])} problem(s) over {int(last['game_dates'])} game dates"
    )
    return (PASS if int(last["problems"]) == 0 else FAIL), evidence


def deployed_at(res: dict[str, dict]) -> dt.datetime:
    """Return when the deployment started: the earliest phase start recorded in the run."""
    starts = [
        dt.datetime.fromisoformat(d["started_at"]) for d in res.values() if d.get("started_at")
    ]
    return min(starts) if starts else dt.datetime.now(dt.UTC)


def _row(window: str, check: str, status: str, evidence: str) -> dict:
    return {"window": window, "check": check, "status": status, "evidence": evidence}


def _later(df: pd.DataFrame, need: int, what: str) -> tuple[str, str]:
    """Return (status, evidence) for evidence that only later runs can give."""
    if (df["status"] == DateStatus.FAILED).any():
        return FAIL, _describe(df)
    if len(df) >= need and (df["status"] == DateStatus.COMPLETE).all():
        return PASS, _describe(df)
    return PENDING, (
        f"{_describe(df)}; " if len(df) else ""
    ) + f"waiting for {what} after the deployment"


@one_connection
def post_deployment_checks(
    wh: Warehouse,
    tables: Tables,
    today: dt.date,
    run_dir: Path,
    run_id: str,
    week_days: int = 7,
    signed: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Return the immediate, first-24-hours and first-week checks with their evidence.

    The 24-hour and first-week checks count only what ran after the deployment started and was
    not run by the deployment itself (its own backfills, its monitor run and its test trigger of
    the function): right after a deployment they are PENDING, and `runbook followup RUN` later
    fills them in. `signed` maps the first-week human items to who signed them.
    """
    res = phase_results(run_dir)
    failed_checks = [
        f"{p}: {c['check']}" for p, d in res.items() for c in d.get("checks", []) if not c["ok"]
    ]
    cleaned = res.get("02_data_cleanup", {}).get("results", {})
    function_run = res.get("03_cloud_function", {}).get("results", {}).get("function") or {}
    since = deployed_at(res)
    ev = Evidence(
        day=backfills_after(wh, tables, today, 1, since, run_id),
        week=backfills_after(wh, tables, today, week_days, since, run_id),
        runs=scheduled_cleanups(
            wh, tables, since, str((function_run.get("audit_row") or {}).get("run_id"))
        ),
        monitor=monitor_runs_after(wh, tables, since, run_id),
        # False positives: any backfill since the deployment began, its own included, that
        # blocked a date whose every PGS player was built.
        since_deploy=backfills_after(wh, tables, today, 3650, since, ""),
    )
    blocked = (ev.since_deploy["status"] == DateStatus.FAILED) & (
        ev.since_deploy["actual_players"] >= ev.since_deploy["expected_players"]
    )
    bad = ev.week[ev.week["coverage_pct"] < 90]
    rows = [
        _row(
            "1 hour",
            "Code deployed",
            PASS if _ok(res.get("01_code_deployment")) else FAIL,
            "phase 01",
        ),
        _row(
            "1 hour",
            "Data cleanup completed",
            PASS if _ok(res.get("02_data_cleanup")) else FAIL,
            cleanup_evidence(run_dir, cleaned),
        ),
        _row(
            "1 hour",
            "Cloud Function deployed",
            PASS if _ok(res.get("03_cloud_function")) else FAIL,
            "phase 03",
        ),
        _row(
            "1 hour",
            "Integration tests passed",
            PASS if _ok(res.get("04_integration_test")) else FAIL,
            "phase 04",
        ),
        _row(
            "1 hour",
            "No errors in logs",
            PASS if not failed_checks else FAIL,
            "; ".join(failed_checks) or f"0 failed checks in {len(res)} phases",
        ),
        _row(
            "24 hours",
            "Next scheduled backfill completes successfully",
            *_later(ev.day, 1, "the next nightly backfill"),
        ),
        _row("24 hours", "Coverage validation appears in logs", *_validated(ev.week)),
        _row(
            "24 hours",
            "Pre-flight check runs correctly",
            PASS
            if res.get("04_integration_test", {}).get("results", {}).get("preflight_stopped")
            else FAIL,
            "phase 04 replayed the incident: the pre-flight stopped it",
        ),
        _row(
            "24 hours",
            "No false positives (complete dates never blocked)",
            FAIL if blocked.any() else (PASS if len(ev.since_deploy) else PENDING),
            f"{int(blocked.sum())} of {len(ev.since_deploy)} dates backfilled since the deployment "
            f"began blocked despite full coverage",
        ),
        _row(
            "24 hours",
            "Cloud Function runs on schedule",
            (FAIL if (ev.runs["status"] != "success").any() else PASS) if len(ev.runs) else PENDING,
            f"{len(ev.runs)} scheduled run(s) since {since:%Y-%m-%d %H:%M} UTC besides phase 03's test",
        ),
        _row("24 hours", "Daily monitor finds no problem", *monitor_status(ev.monitor)),
        _row(
            "first week",
            f"{week_days} consecutive successful backfills",
            *_later(ev.week, week_days, f"{week_days} nightly backfills"),
        ),
        _row(
            "first week",
            "All coverage >= 90%",
            FAIL if len(bad) else (PASS if len(ev.week) else PENDING),
            f"{len(bad)} of {len(ev.week)} later dates below 90%",
        ),
        *_first_week_signoffs(signed or {}, ev.monitor),
    ]
    return pd.DataFrame(rows)


@dataclass
class Evidence:
    """What ran after the deployment, not run by it: nightly metadata, cleanups, monitor runs."""

    day: pd.DataFrame
    week: pd.DataFrame
    runs: pd.DataFrame
    monitor: pd.DataFrame
    since_deploy: pd.DataFrame


def _validated(week: pd.DataFrame) -> tuple[str, str]:
    """Return whether coverage validation ran in a nightly backfill after the deployment."""
    if week.empty:
        return (
            PENDING,
            "waiting for a nightly backfill after the deployment (its validation writes the metadata rows)",
        )
    return PASS, f"validation judged {len(week)} date(s) in nightly backfills after the deployment"


# The seed's first-week items a person signs (phase 06's sign-offs, or `runbook followup`).
NO_INCIDENTS = "No incidents reported"
TEAM_COMFORTABLE = "Team comfortable with new logging"
DASHBOARD_REVIEWED = "Monitoring dashboard reviewed"
FIRST_WEEK_SIGNOFFS = (NO_INCIDENTS, TEAM_COMFORTABLE, DASHBOARD_REVIEWED)


def _first_week_signoffs(signed: dict[str, str], monitor: pd.DataFrame) -> list[dict]:
    """Return the first-week human items: PASS when signed, PENDING until then.

    "No incidents reported" fails on evidence whatever is signed: a monitor run after the
    deployment that found problems is an incident.
    """
    rows = []
    alerted = monitor[monitor["problems"].astype(int) > 0] if len(monitor) else monitor
    for item in FIRST_WEEK_SIGNOFFS:
        who = signed.get(item)
        if item == NO_INCIDENTS and len(alerted):
            rows.append(
                _row(
                    "first week",
                    item,
                    FAIL,
                    f"{len(alerted)} monitor run(s) after the deployment alerted",
                )
            )
            continue
        rows.append(
            _row(
                "first week",
                item,
                PASS if who else PENDING,
                f"signed by {who}" if who else "waiting for a sign-off after the first week",
            )
        )
    return rows


def cleanup_evidence(run_dir: Path, cleaned: dict) -> str:
    """Return what phase 02 deleted: every attempt of it when the run has more than one."""
    latest = f"{cleaned.get('rows_deleted', 'n/a')} rows deleted, dry run {cleaned.get('dry_run')}"
    if not (Path(run_dir) / manifest.MANIFEST).exists():
        return latest
    tries = attempts.phase_attempts(manifest.load(run_dir), "02_data_cleanup")
    if len(tries) < 2:
        return latest
    return "; ".join(attempts.attempt_phrase(r) for r in tries)


def _describe(df: pd.DataFrame) -> str:
    if df.empty:
        return ""
    done = int((df["status"] == DateStatus.COMPLETE).sum())
    return f"{done}/{len(df)} dates COMPLETE ({df['analysis_date'].min()} .. {df['analysis_date'].max()})"


def success_criteria(
    checks: pd.DataFrame, run_dir: Path, team_trained_by: str | None
) -> pd.DataFrame:
    """Return the seed runbook's seven success criteria, each met or not, with evidence.

    A criterion about production is met only by evidence dated after the deployment (`checks`,
    from post_deployment_checks): the first nightly backfill, validation in its logs, the daily
    monitor; never the integration test's replayed dates.
    """
    res = phase_results(run_dir)
    by = checks.set_index("check")["status"]
    ev = checks.set_index("check")["evidence"]
    lines = res.get("04_integration_test", {}).get("results", {}).get("log_lines", [])
    monitor = res.get("05_monitoring", {}).get("results", {})
    first = "Next scheduled backfill completes successfully"
    validated = "Coverage validation appears in logs"
    daily = "Daily monitor finds no problem"
    found = bool(lines) and all(x["found"] for x in lines)
    dashboard = _ok(res.get("05_monitoring")) and monitor.get("dashboard_rows", 0) > 0
    rows = [
        ("All code changes deployed", by.get("Code deployed") == PASS, "phase 01 succeeded", False),
        (
            "Integration tests pass",
            by.get("Integration tests passed") == PASS,
            "phase 04 succeeded",
            False,
        ),
        (
            "First backfill completes with 100% coverage",
            by.get(first) == PASS,
            f"the first nightly backfill after the deployment: {ev.get(first)}",
            by.get(first) == PENDING,
        ),
        (
            "All 4 improvements visible in logs",
            found and by.get(validated) == PASS,
            f"{sum(x['found'] for x in lines)}/{len(lines)} expected lines in phase 04's replay; "
            f"in production: {ev.get(validated)}",
            found and by.get(validated) == PENDING,
        ),
        (
            "No false positives or errors",
            by.get("No errors in logs") == PASS
            and by.get("No false positives (complete dates never blocked)") == PASS,
            "no failed check; no complete date blocked",
            False,
        ),
        (
            "Monitoring dashboards active",
            dashboard and by.get(daily) == PASS,
            f"{monitor.get('dashboard_rows', 0)} dashboard rows, channel {monitor.get('alert_channel', 'n/a')}; "
            f"{ev.get(daily)}",
            dashboard and by.get(daily) == PENDING,
        ),
        (
            "Team trained on new features",
            bool(team_trained_by),
            f"signed by {team_trained_by}" if team_trained_by else "not signed",
            False,
        ),
    ]
    return pd.DataFrame(
        [
            {"criterion": c, "met": bool(m), "waiting": bool(w and not m), "evidence": e}
            for c, m, e, w in rows
        ]
    )


def first_week_signed(given: dict | None) -> dict[str, str]:
    """Return the first-week sign-offs given (item -> name); an unknown item or a blank name is
    refused, so a typo never leaves an item silently PENDING."""
    from runbook_lib.errors import ParamsError

    out = {}
    for item, name in (given or {}).items():
        if item not in FIRST_WEEK_SIGNOFFS:
            raise ParamsError(
                "phases.06_post_deployment.first_week",
                str(item),
                "is not a first-week item",
                f"use one of: {', '.join(FIRST_WEEK_SIGNOFFS)}",
            )
        if not str(name or "").strip():
            raise ParamsError(
                "phases.06_post_deployment.first_week",
                str(item),
                "has no name",
                "give the name of the person who signs it",
            )
        out[item] = str(name).strip()
    return out
