"""Post-deployment validation: later windows stay PENDING until later runs give evidence."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from runbook_lib.run import post_deployment

TODAY = dt.date(2025, 4, 10)


def _results(run_dir, phase: str, started: str, status: str = "SUCCEEDED", results=None):
    (run_dir / "results").mkdir(parents=True, exist_ok=True)
    doc = {"phase": phase, "status": status, "started_at": started, "checks": [{"check": "x", "ok": True}],
           "results": results or {}}
    (run_dir / "results" / f"{phase}.json").write_text(json.dumps(doc))


def _metadata(wh, tables, rows):
    df = pd.DataFrame([{"analysis_date": d, "expected_players": 180, "actual_players": a,
                        "coverage_pct": a / 180 * 100, "status": s, "run_id": r,
                        "tracked_at": pd.Timestamp(t, tz="UTC")} for d, a, s, r, t in rows])
    df["analysis_date"] = df["analysis_date"].astype("dbdate")
    wh.load_dataframe(tables.backfill_metadata, df)


def _status(checks, name):
    return checks.set_index("check").loc[name, "status"]


def test_later_windows_should_be_pending_when_only_the_deployment_ran(empty_wh, local_params, tmp_path):
    t = local_params.tables
    for p in post_deployment.PHASES:
        _results(tmp_path, p, "2026-01-13T10:00:00+00:00")
    days = [TODAY - dt.timedelta(days=i) for i in range(1, 8)]
    _metadata(empty_wh, t, [(d, 180, "COMPLETE", "deploy-run", "2026-01-13 10:05") for d in days])
    checks = post_deployment.post_deployment_checks(empty_wh, t, TODAY, tmp_path, "deploy-run")
    assert _status(checks, "Next scheduled backfill completes successfully") == post_deployment.PENDING
    assert _status(checks, "7 consecutive successful backfills") == post_deployment.PENDING
    assert _status(checks, "Cloud Function runs on schedule") == post_deployment.PENDING
    assert _status(checks, "No false positives (complete dates never blocked)") == post_deployment.PASS


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
    assert _status(checks, "No false positives (complete dates never blocked)") == post_deployment.FAIL
