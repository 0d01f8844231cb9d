"""Post-deployment validation: later windows stay PENDING until later runs give evidence."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from runbook_lib.run import validation

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
    for p in validation.PHASES:
        _results(tmp_path, p, "2026-01-13T10:00:00+00:00")
    days = [TODAY - dt.timedelta(days=i) for i in range(1, 8)]
    _metadata(empty_wh, t, [(d, 180, "COMPLETE", "deploy-run", "2026-01-13 10:05") for d in days])
    checks = validation.post_deployment_checks(empty_wh, t, TODAY, tmp_path, "deploy-run")
    assert _status(checks, "Next scheduled backfill completes successfully") == validation.PENDING
    assert _status(checks, "7 consecutive successful backfills") == validation.PENDING
    assert _status(checks, "Cloud Function runs on schedule") == validation.PENDING
    assert _status(checks, "No false positives (complete dates never blocked)") == validation.PASS


def test_later_windows_should_pass_or_fail_on_later_runs(empty_wh, local_params, tmp_path):
    t = local_params.tables
    for p in validation.PHASES:
        _results(tmp_path, p, "2026-01-13T10:00:00+00:00")
    days = [TODAY - dt.timedelta(days=i) for i in range(1, 8)]
    _metadata(empty_wh, t, [(d, 180, "COMPLETE", f"nightly-{d}", "2026-01-14 04:00") for d in days])
    checks = validation.post_deployment_checks(empty_wh, t, TODAY, tmp_path, "deploy-run")
    assert _status(checks, "7 consecutive successful backfills") == validation.PASS
    _metadata(empty_wh, t, [(days[0], 180, "FAILED", "nightly-bad", "2026-01-15 04:00")])
    checks = validation.post_deployment_checks(empty_wh, t, TODAY, tmp_path, "deploy-run")
    assert _status(checks, "Next scheduled backfill completes successfully") == validation.FAIL
    assert _status(checks, "No false positives (complete dates never blocked)") == validation.FAIL
