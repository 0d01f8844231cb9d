"""Phase 06, post-deployment: the seed's 1 h / 24 h / first-week checks and success criteria.

Each check is computed from what exists: the run's own phase results, the backfill metadata
the backfill writes per date, and the cleanup audit rows. A check whose window has not yet
elapsed with too little evidence is PENDING, never passed; rerun phase 06 on the same run later.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from runbook_lib.platform.schema import Tables
from runbook_lib.run import attempts, manifest
from runbook_lib.run.phase import read_results
from runbook_lib.statuses import CheckStatus, DateStatus, PhaseStatus
from runbook_lib.warehouse.base import Warehouse

# Notebook 06 reads the statuses by these names.
PASS, FAIL, PENDING = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.PENDING
PHASES = ("00_preflight", "01_code_deployment", "02_data_cleanup", "03_cloud_function",
          "04_integration_test", "05_monitoring")


def phase_results(run_dir: Path) -> dict[str, dict]:
    """Return the results document of each phase that wrote one in `run_dir`."""
    return {p: doc for p in PHASES if (doc := read_results(run_dir, p))}


def _ok(doc: dict | None) -> bool:
    return bool(doc) and doc.get("status") == PhaseStatus.SUCCEEDED


def backfills_after(wh: Warehouse, tables: Tables, today: dt.date, days: int,
                    since: dt.datetime, exclude_run: str) -> pd.DataFrame:
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


def scheduled_cleanups(wh: Warehouse, tables: Tables, since: dt.datetime, exclude_run: str) -> pd.DataFrame:
    """Return the function's scheduled runs (audit rows) since a time, but the one phase 03 fired."""
    sql = f"""
        SELECT cleanup_time, status, total_records_deleted, cutoff_date, run_id
        FROM {tables.cleanup_operations.sql}
        WHERE trigger = 'scheduled' AND cleanup_time >= @since AND run_id != @run_id
        ORDER BY cleanup_time"""
    return wh.query(sql, {"since": since, "run_id": exclude_run})


def deployed_at(res: dict[str, dict]) -> dt.datetime:
    """Return when the deployment started: the earliest phase start recorded in the run."""
    starts = [dt.datetime.fromisoformat(d["started_at"]) for d in res.values() if d.get("started_at")]
    return min(starts) if starts else dt.datetime.now(dt.UTC)


def _row(window: str, check: str, status: str, evidence: str) -> dict:
    return {"window": window, "check": check, "status": status, "evidence": evidence}


def _later(df: pd.DataFrame, need: int, what: str) -> tuple[str, str]:
    """Return (status, evidence) for evidence that only later runs can give."""
    if (df["status"] == DateStatus.FAILED).any():
        return FAIL, _describe(df)
    if len(df) >= need and (df["status"] == DateStatus.COMPLETE).all():
        return PASS, _describe(df)
    return PENDING, (f"{_describe(df)}; " if len(df) else "") + f"waiting for {what} after the deployment"


def post_deployment_checks(wh: Warehouse, tables: Tables, today: dt.date, run_dir: Path,
                           run_id: str, week_days: int = 7) -> pd.DataFrame:
    """Return the immediate, first-24-hours and first-week checks with their evidence.

    The 24-hour and first-week checks count only what ran after the deployment started and was
    not run by the deployment itself (its own backfills and its test trigger of the function):
    right after a deployment they are PENDING, and a rerun of phase 06 later fills them in.
    """
    res = phase_results(run_dir)
    failed_checks = [f"{p}: {c['check']}" for p, d in res.items() for c in d.get("checks", []) if not c["ok"]]
    cleaned = res.get("02_data_cleanup", {}).get("results", {})
    function_run = (res.get("03_cloud_function", {}).get("results", {}).get("function") or {})
    since = deployed_at(res)
    day = backfills_after(wh, tables, today, 1, since, run_id)
    week = backfills_after(wh, tables, today, week_days, since, run_id)
    runs = scheduled_cleanups(wh, tables, since, str((function_run.get("audit_row") or {}).get("run_id")))
    # False positives: any backfill since the deployment began, its own included, that blocked a
    # date whose every PGS player was built.
    since_deploy = backfills_after(wh, tables, today, 3650, since, "")
    blocked = (since_deploy["status"] == DateStatus.FAILED) & (
        since_deploy["actual_players"] >= since_deploy["expected_players"])
    bad = week[week["coverage_pct"] < 90]
    rows = [
        _row("1 hour", "Code deployed", PASS if _ok(res.get("01_code_deployment")) else FAIL, "phase 01"),
        _row("1 hour", "Data cleanup completed", PASS if _ok(res.get("02_data_cleanup")) else FAIL,
             cleanup_evidence(run_dir, cleaned)),
        _row("1 hour", "Cloud Function deployed", PASS if _ok(res.get("03_cloud_function")) else FAIL, "phase 03"),
        _row("1 hour", "Integration tests passed", PASS if _ok(res.get("04_integration_test")) else FAIL, "phase 04"),
        _row("1 hour", "No errors in logs", PASS if not failed_checks else FAIL,
             "; ".join(failed_checks) or f"0 failed checks in {len(res)} phases"),
        _row("24 hours", "Next scheduled backfill completes successfully",
             *_later(day, 1, "the next nightly backfill")),
        _row("24 hours", "Coverage validation and pre-flight appear",
             PASS if res.get("04_integration_test", {}).get("results", {}).get("preflight_stopped") else FAIL,
             "phase 04 log lines"),
        _row("24 hours", "No false positives (complete dates never blocked)",
             FAIL if blocked.any() else (PASS if len(since_deploy) else PENDING),
             f"{int(blocked.sum())} of {len(since_deploy)} dates backfilled since the deployment "
             f"began blocked despite full coverage"),
        _row("24 hours", "Cloud Function runs on schedule",
             (FAIL if (runs["status"] != "success").any() else PASS) if len(runs) else PENDING,
             f"{len(runs)} scheduled run(s) since {since:%Y-%m-%d %H:%M} UTC besides phase 03's test"),
        _row("first week", f"{week_days} consecutive successful backfills",
             *_later(week, week_days, f"{week_days} nightly backfills")),
        _row("first week", "All coverage >= 90%", FAIL if len(bad) else (PASS if len(week) else PENDING),
             f"{len(bad)} of {len(week)} later dates below 90%"),
    ]
    return pd.DataFrame(rows)


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


def success_criteria(checks: pd.DataFrame, run_dir: Path, team_trained_by: str | None) -> pd.DataFrame:
    """Return the seed runbook's seven success criteria, each met or not, with evidence."""
    res = phase_results(run_dir)
    by = checks.set_index("check")["status"]
    lines = res.get("04_integration_test", {}).get("results", {}).get("log_lines", [])
    coverage = res.get("04_integration_test", {}).get("results", {}).get("coverage", [])
    monitor = res.get("05_monitoring", {}).get("results", {})
    rows = [
        ("All code changes deployed", by.get("Code deployed") == PASS, "phase 01 succeeded"),
        ("Integration tests pass", by.get("Integration tests passed") == PASS, "phase 04 succeeded"),
        ("First backfill completes with 100% coverage",
         bool(coverage) and all(c["coverage_pct"] == 100 for c in coverage),
         ", ".join(f"{c['game_date']}: {c['actual']}/{c['expected']}" for c in coverage) or "no coverage recorded"),
        ("All 4 improvements visible in logs", bool(lines) and all(x["found"] for x in lines),
         f"{sum(x['found'] for x in lines)}/{len(lines)} expected lines found"),
        ("No false positives or errors",
         by.get("No errors in logs") == PASS and by.get("No false positives (complete dates never blocked)") == PASS,
         "no failed check; no complete date blocked"),
        ("Monitoring dashboards active", _ok(res.get("05_monitoring")) and monitor.get("dashboard_rows", 0) > 0,
         f"{monitor.get('dashboard_rows', 0)} dashboard rows, channel {monitor.get('alert_channel', 'n/a')}"),
        ("Team trained on new features", bool(team_trained_by), f"signed by {team_trained_by}" if team_trained_by else "not signed"),
    ]
    return pd.DataFrame([{"criterion": c, "met": bool(m), "evidence": e} for c, m, e in rows])
