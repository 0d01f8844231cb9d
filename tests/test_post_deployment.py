"""Post-deployment validation: later windows stay PENDING until later runs give evidence."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from runbook_lib.run import post_deployment

TODAY = dt.date(2025, 4, 10)


def _results(run_dir, phase: str, started: str, status: str = "SUCCEEDED", results=None):
    (run_dir / "results").mkdir(parents=True, exist_ok=True)
    doc = {
        "phase": phase,
        "status": status,
        "started_at": started,
        "checks": [{"check": "x", "ok": True}],
        "results": results or {},
    }
    (run_dir / "results" / f"{phase}.json").write_text(json.dumps(doc))


def _metadata(wh, tables, rows):
    df = pd.DataFrame(
        [
            {
                "analysis_date": d,
                "expected_players": 180,
                "actual_players": a,
                "coverage_pct": a / 180 * 100,
                "status": s,
                "run_id": r,
                "tracked_at": pd.Timestamp(t, tz="UTC"),
            }
            for d, a, s, r, t in rows
        ]
    )
    df["analysis_date"] = df["analysis_date"].astype("dbdate")
    wh.load_dataframe(tables.backfill_metadata, df)


def _status(checks, name):
    return checks.set_index("check").loc[name, "status"]


def test_later_windows_should_be_pending_when_only_the_deployment_ran(
    empty_wh, local_params, tmp_path
):
    t = local_params.tables
    for p in post_deployment.PHASES:
        _results(tmp_path, p, "2026-01-13T10:00:00+00:00")
    days = [TODAY - dt.timedelta(days=i) for i in range(1, 8)]
    _metadata(empty_wh, t, [(d, 180, "COMPLETE", "deploy-run", "2026-01-13 10:05") for d in days])
    checks = post_deployment.post_deployment_checks(empty_wh, t, TODAY, tmp_path, "deploy-run")
    assert (
        _status(checks, "Next scheduled backfill completes successfully") == post_deployment.PENDING
    )
    assert _status(checks, "7 consecutive successful backfills") == post_deployment.PENDING
    assert _status(checks, "Cloud Function runs on schedule") == post_deployment.PENDING
    assert (
        _status(checks, "No false positives (complete dates never blocked)") == post_deployment.PASS
    )


def test_later_windows_should_pass_or_fail_on_later_runs(empty_wh, local_params, tmp_path):
    t = local_params.tables
    for p in post_deployment.PHASES:
        _results(tmp_path, p, "2026-01-13T10:00:00+00:00")
    days = [TODAY - dt.timedelta(days=i) for i in range(1, 8)]
    _metadata(empty_wh, t, [(d, 180, "COMPLETE", f"nightly-{d}", "2026-01-14 04:00") for d in days])
    checks = post_deployment.post_deployment_checks(empty_wh, t, TODAY, tmp_path, "deploy-run")
    assert _status(checks, "7 consecutive successful backfills") == post_deployment.PASS
    _metadata(empty_wh, t, [(days[0], 180, "FAILED", "nightly-bad", "2026-01-15 04:00")])
    checks = post_deployment.post_deployment_checks(empty_wh, t, TODAY, tmp_path, "deploy-run")
    assert _status(checks, "Next scheduled backfill completes successfully") == post_deployment.FAIL
    assert (
        _status(checks, "No false positives (complete dates never blocked)") == post_deployment.FAIL
    )


def _monitor_run(wh, tables, problems: int, run_id: str, at: str):
    from runbook_lib.platform.schema import MONITOR_RUNS

    wh.ensure_table(tables.monitor_runs, MONITOR_RUNS)
    df = pd.DataFrame(
        [
            {
                "monitor_day": TODAY - dt.timedelta(days=1),
                "checked_at": pd.Timestamp(at, tz="UTC"),
                "window_days": 30,
                "game_dates": 28,
                "problems": problems,
                "run_id": run_id,
            }
        ]
    )
    df["monitor_day"] = df["monitor_day"].astype("dbdate")
    wh.load_dataframe(tables.monitor_runs, df)


def _criteria(empty_wh, t, tmp_path, coverage=None, **signed):
    checks = post_deployment.post_deployment_checks(
        empty_wh, t, TODAY, tmp_path, "deploy-run", signed=signed
    )
    crit = post_deployment.success_criteria(checks, tmp_path, "Ana")
    return checks, crit.set_index("criterion")


def test_the_integration_tests_dates_should_never_meet_a_production_criterion(
    empty_wh, local_params, tmp_path
):
    """Issue 11: "first backfill 100%" and "validation in logs" were met by phase 04's replayed dates."""
    t = local_params.tables
    for p in post_deployment.PHASES:
        _results(tmp_path, p, "2026-01-13T10:00:00+00:00")
    _results(
        tmp_path,
        "04_integration_test",
        "2026-01-13T10:00:00+00:00",
        results={
            "coverage": [
                {"game_date": "2023-02-23", "expected": 187, "actual": 187, "coverage_pct": 100.0}
            ],
            "log_lines": [{"line": "PRE-FLIGHT", "found": True}],
            "preflight_stopped": True,
        },
    )
    _results(tmp_path, "05_monitoring", "2026-01-13T10:00:00+00:00", results={"dashboard_rows": 29})
    _metadata(
        empty_wh,
        t,
        [(TODAY - dt.timedelta(days=1), 180, "COMPLETE", "deploy-run", "2026-01-13 10:05")],
    )
    _monitor_run(empty_wh, t, 0, "deploy-run", "2026-01-13 10:06")  # phase 05's own run
    checks, crit = _criteria(empty_wh, t, tmp_path)
    for name in (
        "First backfill completes with 100% coverage",
        "All 4 improvements visible in logs",
        "Monitoring dashboards active",
    ):
        assert not crit.loc[name, "met"], name
    assert _status(checks, "Daily monitor finds no problem") == post_deployment.PENDING
    assert _status(checks, "Coverage validation appears in logs") == post_deployment.PENDING
    # the evidence after the deployment: a nightly backfill and the daily monitor
    _metadata(
        empty_wh,
        t,
        [(TODAY - dt.timedelta(days=1), 180, "COMPLETE", "nightly", "2026-01-14 04:00")],
    )
    _monitor_run(empty_wh, t, 0, None, "2026-01-14 06:00")
    checks, crit = _criteria(empty_wh, t, tmp_path)
    assert crit["met"].all(), crit
    assert (
        "nightly backfill after the deployment"
        in crit.loc["First backfill completes with 100% coverage", "evidence"]
    )


def test_a_monitor_run_that_alerted_should_fail_the_monitor_check_and_no_incidents(
    empty_wh, local_params, tmp_path
):
    t = local_params.tables
    for p in post_deployment.PHASES:
        _results(tmp_path, p, "2026-01-13T10:00:00+00:00")
    _monitor_run(empty_wh, t, 3, None, "2026-01-14 06:00")
    checks, _ = _criteria(empty_wh, t, tmp_path, **{post_deployment.NO_INCIDENTS: "Ana"})
    assert _status(checks, "Daily monitor finds no problem") == post_deployment.FAIL
    assert _status(checks, post_deployment.NO_INCIDENTS) == post_deployment.FAIL


def test_first_week_items_should_be_pending_until_signed(empty_wh, local_params, tmp_path):
    t = local_params.tables
    for p in post_deployment.PHASES:
        _results(tmp_path, p, "2026-01-13T10:00:00+00:00")
    checks, _ = _criteria(empty_wh, t, tmp_path)
    assert {_status(checks, i) for i in post_deployment.FIRST_WEEK_SIGNOFFS} == {
        post_deployment.PENDING
    }
    signed = post_deployment.first_week_signed(
        {i: "Ana" for i in post_deployment.FIRST_WEEK_SIGNOFFS}
    )
    checks, _ = _criteria(empty_wh, t, tmp_path, **signed)
    assert {_status(checks, i) for i in post_deployment.FIRST_WEEK_SIGNOFFS} == {
        post_deployment.PASS
    }


def test_a_misspelt_or_unnamed_first_week_signoff_should_be_refused():
    import pytest

    from runbook_lib.errors import ParamsError

    with pytest.raises(ParamsError, match="is not a first-week item"):
        post_deployment.first_week_signed({"No incident": "Ana"})
    with pytest.raises(ParamsError, match="has no name"):
        post_deployment.first_week_signed({post_deployment.NO_INCIDENTS: " "})
