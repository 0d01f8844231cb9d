"""Each phase's checks, decided by runbook_lib/run/phase_checks.py: passing and failing evidence."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from runbook_lib.platform import cleanup
from runbook_lib.run import checks, phase_checks
from runbook_lib.run.interact import Approvals
from runbook_lib.run.phase_checks import Check
from runbook_lib.run.post_deployment import FAIL, PASS, PENDING
from tests.test_cleanup import days, plan_of, tables, upcg_rows, wh  # noqa: F401 - fixtures

TODAY = dt.date(2025, 4, 10)


def _one(found: list[Check]) -> Check:
    assert len(found) == 1 and isinstance(found[0], Check)
    return found[0]


# -- 00 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dirty,required,ok",
    [((), True, True), (("?? x.py",), True, False), (("?? x.py",), False, True)],
)
def test_tree_check_should_fail_only_on_a_dirty_tree_that_must_be_clean(dirty, required, ok):
    check = _one(phase_checks.tree_checks(checks.GitState(True, "main", "a" * 40, dirty), required))
    assert check.ok is ok and check.name == f"working tree clean (required: {required})"
    assert f"{len(dirty)} uncommitted file(s)" in check.evidence and "aaaaaaaaaa," in check.evidence


def test_access_check_should_fail_when_one_object_is_refused_and_count_them():
    access = pd.DataFrame({"object": ["a", "b", "c"], "ok": [True, False, True]})
    check = _one(phase_checks.access_checks(access))
    assert not check.ok and check.evidence == "2/3 ok"
    assert _one(phase_checks.access_checks(access.assign(ok=True))).ok


def test_signoff_check_should_fail_while_an_item_is_unsigned():
    signoffs = Approvals(["x", "y"], {"x": "Ann"})
    assert not _one(phase_checks.signoff_checks(signoffs, [])).ok
    signoffs = Approvals(["x", "y"], {"x": "Ann", "y": "Bo"})
    check = _one(phase_checks.signoff_checks(signoffs, signoffs.require()))
    assert check.ok and check.evidence == "2 items signed"


def test_signed_by_should_name_who_signed_an_item_or_none():
    signed = Approvals(
        list(checks.POST_DEPLOYMENT_SIGNOFFS),
        {checks.TEAM_TRAINED: "Ann", "Deployment verified": "Bo"},
    ).require()
    assert checks.signed_by(signed, checks.TEAM_TRAINED) == "Ann"
    assert checks.signed_by(signed, "not an item") is None


# -- 01 ------------------------------------------------------------------------------------------
def test_merge_check_should_name_what_was_asked_and_carry_the_outcome():
    refused = {"requested": True, "ok": False, "detail": "refused"}
    check = _one(phase_checks.merge_checks(refused))
    assert (check.name, check.ok, check.evidence) == ("merge fast-forwarded", False, "refused")
    check = _one(phase_checks.merge_checks(checks.merge_fast_forward("")))
    assert check.name == "merge not requested" and check.ok


@pytest.mark.parametrize(
    "exit_code,passed,ok", [(0, 30, True), (1, 29, False), (0, 0, False), (5, 0, False)]
)
def test_pytest_check_should_need_a_zero_exit_and_at_least_one_pass(exit_code, passed, ok):
    tests = {"exit_code": exit_code, "passed": passed, "failed": 0, "summary": "tail"}
    assert _one(phase_checks.pytest_checks(tests)) == Check("safeguard tests pass", ok, "tail")


def test_safeguard_check_should_fail_when_one_probe_finds_its_safeguard_missing():
    present = pd.DataFrame(
        {"safeguard": ["a", "b"], "present": [True, False], "evidence": ["", ""]}
    )
    check = _one(phase_checks.safeguard_checks(present))
    assert not check.ok and check.evidence == "1/2 present"


@pytest.mark.parametrize("compiled,ok", [(40, True), (0, False)])
def test_compile_check_should_fail_when_nothing_compiled(compiled, ok):
    assert _one(phase_checks.compile_checks(compiled)).ok is ok


# -- 02 ------------------------------------------------------------------------------------------
def test_cleanup_checks_should_pass_a_real_cleanup_and_fail_when_stale_rows_are_left(wh, tables):  # noqa: F811
    plan = plan_of(wh, tables)
    result = cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="c1")
    found = phase_checks.cleanup_checks(plan, result, plan_of(wh, tables))
    assert [c.ok for c in found] == [True] * 4, found
    wh.load_dataframe(tables.upcg, upcg_rows([dt.date(2025, 3, 1)], tag="late"))
    left = {c.name: c for c in phase_checks.cleanup_checks(plan, result, plan_of(wh, tables))}
    assert not left["no stale rows remain (the seed's Step 2.4 query)"].ok
    assert left["rows deleted equal rows previewed"].ok


def test_cleanup_checks_should_fail_a_dry_run_that_changed_the_stale_rows(wh, tables):  # noqa: F811
    plan = plan_of(wh, tables)
    result = cleanup.apply_cleanup(wh, tables, plan, dry_run=True)
    assert _one(phase_checks.cleanup_checks(plan, result, plan_of(wh, tables))).ok
    wh.load_dataframe(tables.upcg, upcg_rows([dt.date(2025, 3, 1)], tag="late"))
    check = _one(phase_checks.cleanup_checks(plan, result, plan_of(wh, tables)))
    assert not check.ok and check.name == "dry run changed nothing"


# -- 04 ------------------------------------------------------------------------------------------
def _outcomes(*pcts: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "game_date": [TODAY] * len(pcts),
            "expected": 187,
            "actual": 187,
            "coverage_pct": list(pcts),
            "status": "COMPLETE",
        }
    )


def test_full_coverage_check_should_fail_below_100_on_any_date():
    assert _one(phase_checks.full_coverage_checks("n", _outcomes(100.0, 100.0))).ok
    check = _one(phase_checks.full_coverage_checks("n", _outcomes(100.0, 99.5)))
    assert (
        not check.ok
        and check.evidence[1]["coverage_pct"] == 99.5
        and "status" not in check.evidence[0]
    )


def test_preflight_stop_check_should_fail_when_nothing_stopped_the_replay():
    assert not _one(phase_checks.preflight_stop_checks(None)).ok
    assert _one(phase_checks.preflight_stop_checks(ValueError("stopped"))).ok


def test_incident_checks_should_need_exactly_the_planted_rows_removed():
    planted = {TODAY: ["a", "b"], TODAY + dt.timedelta(days=1): []}
    assert _one(phase_checks.incident_planted_checks(True, planted)).evidence == {
        str(TODAY): "2 planted",
        str(TODAY + dt.timedelta(days=1)): "0 planted",
    }
    assert not _one(phase_checks.incident_planted_checks(False, planted)).ok
    exact = {TODAY: 2, TODAY + dt.timedelta(days=1): 0}
    assert _one(phase_checks.incident_removed_checks(planted, exact)).ok
    assert not _one(phase_checks.incident_removed_checks(planted, {**exact, TODAY: 1})).ok


def test_coverage_check_should_fail_when_a_date_is_missing_or_short():
    three = _outcomes(100.0, 100.0, 100.0)
    assert _one(phase_checks.coverage_checks(three, 3)).ok
    assert not _one(phase_checks.coverage_checks(three.iloc[:2], 3)).ok
    assert not _one(phase_checks.coverage_checks(_outcomes(100.0, 100.0, 38.9), 3)).ok


def test_log_line_check_should_count_the_lines_found():
    from runbook_lib.run.backfill_steps import expected_lines

    found = expected_lines(["PRE-FLIGHT COVERAGE CHECK passed"], ("PRE-FLIGHT", "FALLBACK"))
    assert _one(phase_checks.log_line_checks(found)) == Check(
        "every expected log line appeared", False, "1/2"
    )


# -- 05 ------------------------------------------------------------------------------------------
def _board(*pcts: float) -> pd.DataFrame:
    dates = [TODAY - dt.timedelta(days=len(pcts) - i) for i in range(len(pcts))]
    return pd.DataFrame({"game_date": dates, "coverage_pct": list(pcts)})


def test_dashboard_check_should_fail_on_an_empty_dashboard():
    assert not _one(phase_checks.dashboard_checks(_board(), 30)).ok
    assert (
        _one(phase_checks.dashboard_checks(_board(100.0), 30)).evidence
        == "1 game dates in the last 30 days"
    )


@pytest.mark.parametrize(
    "status,received,ok",
    [(200, 1, True), (200, 0, False), (500, 1, False), (None, 0, False), (200, None, True)],
)
def test_alert_channel_check_should_need_a_2xx_and_a_received_message(status, received, ok):
    delivered = _one(phase_checks.alert_checks(status, received, "here", no_channel=False))
    assert (
        delivered.ok is ok
        and f"HTTP {status}, {received} message(s) received by here" == delivered.evidence
    )


# -- 06 ------------------------------------------------------------------------------------------
def test_window_check_should_fail_on_a_fail_and_not_on_pending():
    windows = pd.DataFrame({"check": ["a", "b", "c"], "status": [PASS, PENDING, PASS]})
    assert _one(phase_checks.post_deployment_window_checks(windows)) == Check(
        "no post-deployment check failed", True, []
    )
    check = _one(
        phase_checks.post_deployment_window_checks(windows.assign(status=[PASS, FAIL, FAIL]))
    )
    assert not check.ok and check.evidence == ["b", "c"]


def test_success_criteria_check_should_count_the_criteria_it_is_given():
    criteria = pd.DataFrame(
        {"criterion": list("abcdefg"), "met": [True] * 6 + [False], "evidence": ""}
    )
    assert _one(phase_checks.success_criteria_checks(criteria)) == Check(
        "no success criterion of seven failed", False, "6/7 met"
    )
    assert _one(phase_checks.success_criteria_checks(criteria.iloc[:3].assign(met=True))) == Check(
        "no success criterion of three failed", True, "3/3 met"
    )
    waiting = criteria.assign(waiting=[False] * 6 + [True])
    assert _one(phase_checks.success_criteria_checks(waiting)) == Check(
        "no success criterion of seven failed", True,
        "6/7 met, 1 waiting for evidence after the deployment",
    )


# -- 90 ------------------------------------------------------------------------------------------
def test_rollback_checks_should_say_no_data_to_restore_and_fail_an_unverified_restore():
    """No backup recorded means no cleanup deleted a row: said, not failed (a backup that was
    recorded but is gone still stops the rollback: cleanup_restore.check_backups)."""
    found = _one(phase_checks.backups_found_checks([]))
    assert found.ok and found.name.startswith("no data to restore")
    table = pd.DataFrame(columns=["table", "how", "rows", "deleted", "missing_after", "verified"])
    assert phase_checks.restore_checks([], table) == []
    row = {
        "table": "t",
        "how": "insert",
        "rows": 3,
        "deleted": 3,
        "missing_after": 0,
        "verified": True,
    }
    assert _one(phase_checks.restore_checks([object()], pd.DataFrame([row]))).ok
    assert not _one(
        phase_checks.restore_checks([object()], pd.DataFrame([{**row, "verified": False}]))
    ).ok
    assert _one(phase_checks.function_rollback_checks({"ok": True, "detail": "none"})).ok


def test_monitor_function_check_should_fail_on_an_error_status_or_no_summary():
    ok = {"served": True, "http_status": 200, "summary": {"status": "healthy", "headline": "h"}}
    assert [c.ok for c in phase_checks.monitor_function_checks(ok)] == [True]
    assert not phase_checks.monitor_function_checks({**ok, "http_status": 500})[0].ok
    assert not phase_checks.monitor_function_checks({**ok, "summary": {}})[0].ok
    elsewhere = {"served": False, "note": "deployed by its plan"}
    [check] = phase_checks.monitor_function_checks(elsewhere)
    assert check.ok and "not served here" in check.evidence
