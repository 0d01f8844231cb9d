"""The complete rollback: data, the function (paused, deleted on confirmation, or left alone when a
dry-run phase 03 deployed nothing), the code range deployed, and ROLLED BACK in log and report."""

from __future__ import annotations

import json
import shutil

import pytest

from runbook_lib import paths
from runbook_lib.errors import ConfirmationRequired, ParamsError
from runbook_lib.run import manifest, report, rollback_phase, runner
from runbook_lib.run.params import load_params
from tests.code_repo import commit, own_repo
from tests.conftest import SOURCE_PARAMS
from tests.phase_notebooks import write_phase
from tests.test_deploy_plan import calls, plan_for


@pytest.fixture
def own(tmp_params_dir, tmp_path, monkeypatch):
    """A repo of the test's own as the deployed code, the warehouse under tmp_path."""
    return own_repo(tmp_path, monkeypatch)


def test_rollback_says_rolled_back_with_its_numbers_and_reason(own, tmp_path, seeded_file):
    """The real 02 then the real 90: the log and the report say ROLLED BACK, the rows restored,
    the function left alone (no 03 in the run) and why."""
    commit(own, "v1")
    (tmp_path / "warehouse").mkdir()
    shutil.copy(seeded_file, tmp_path / "warehouse" / seeded_file.name)
    result = runner.run("local", phases=["02"], out_root=tmp_path / "out")
    deleted = result.records[-1]["results"]["rows_deleted"]
    assert deleted > 0
    why = "cleanup deleted rows the team still needed (INC-9)"
    runner.rollback(result.run_dir, function={"reason": why})
    log = (result.run_dir / "deployment_log.md").read_text()
    status = next(line for line in log.splitlines() if line.startswith("**Status:** ROLLED BACK"))
    assert f"{deleted:,} rows restored to 2 table(s)" in status and why in status
    assert "function: none (phase 03 was skipped in this run (not selected for this run)" in status
    issues = log.split("## Issues Encountered", 1)[1].split("##", 1)[0]
    assert "ROLLED BACK" in issues and "None" not in issues
    word, reason = report.verdict(manifest.load(result.run_dir))
    assert word == "ROLLED_BACK" and why in reason
    assert "ROLLED BACK: at " in (result.run_dir / "report.html").read_text()
    assert runner.verify(result.run_dir).ok


def test_code_revert_covers_the_range_since_the_previous_deployment(own, tmp_path):
    """Each run records the previous deployed commit: the revert is `prev..head`, newest first."""
    write_phase(tmp_path / "nb", "01_deploy", ['phase.check("deployed", True)'])
    first = commit(own, "v1")
    one = runner.run("local", notebooks_dir=tmp_path / "nb", out_root=tmp_path / "out")
    commit(own, "v2")
    head = commit(own, "v3")
    two = runner.run("local", notebooks_dir=tmp_path / "nb", out_root=tmp_path / "out")
    revert = rollback_phase.code_revert(two.run_dir)
    assert revert["commands"] == [f"git revert --no-edit {first}..{head}", "git push origin main"]
    assert f"deployed by run {one.run_id}" in revert["detail"]
    alone = rollback_phase.code_revert(one.run_dir)
    assert alone["commands"][0] == f"git revert --no-edit {first}"
    assert "range's start is unknown" in alone["detail"]
    text = rollback_phase.revert_text(revert)
    assert text.splitlines()[1] == f"git revert --no-edit {first}..{head}"


def _staging():
    return load_params("staging", params_dir=SOURCE_PARAMS)


def _run_with_03(tmp_path, deployed: bool):
    write_phase(
        tmp_path / "nb3",
        "03_fn",
        [f'phase.record("function", {{"deployed": {deployed}}})', 'phase.check("c", True)'],
    )
    return runner.run("local", notebooks_dir=tmp_path / "nb3", out_root=tmp_path / "out")


def test_after_a_dry_run_phase_03_the_function_rollback_touches_nothing_and_says_so(
    own, tmp_path, gcloud
):
    """Staging's 03 ran dry: no gcloud command at all, and the detail says why."""
    commit(own, "v1")
    run = _run_with_03(tmp_path, deployed=False)
    result = rollback_phase.rollback_function(_staging(), "delete", "", run.run_dir)
    assert result["action"] == "none" and "was a dry run" in result["detail"]
    assert calls(gcloud) == []


def test_deleting_the_function_needs_the_confirmation_then_deletes_job_and_function(
    own, tmp_path, gcloud
):
    """Delete without the line: refused naming it, nothing changed; with it: job, then function."""
    from runbook_lib.platform import deploy_plan
    from runbook_lib.platform.cloud_function.gcloud import GcloudRunner

    commit(own, "v1")
    run = _run_with_03(tmp_path, deployed=True)
    staging = _staging()
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "main.py").write_text("# bundle\n")
    plan = plan_for(staging, tmp_path / "bundle")
    deploy_plan.apply(plan, GcloudRunner(plan.project, plan.region))
    token = rollback_phase.delete_token(staging)
    assert token == (
        "delete function upcoming-tables-cleanup and scheduler job "
        "upcoming-tables-cleanup-schedule in nba-props-staging"
    )
    with pytest.raises(ConfirmationRequired) as caught:
        rollback_phase.rollback_function(staging, "delete", "delete it", run.run_dir)
    assert token in str(caught.value) and "--confirm-delete" in str(caught.value)
    assert not [c for c in calls(gcloud) if "delete" in c]
    result = rollback_phase.rollback_function(staging, "delete", token, run.run_dir)
    deletes = [c[:3] for c in calls(gcloud) if "delete" in c]
    assert deletes == [["scheduler", "jobs", "delete"], ["functions", "delete", plan.function]]
    state = json.loads(gcloud.read_text())
    assert not state["jobs"] and not state["functions"]
    assert result["action"] == "delete" and "scheduler jobs delete" in result["detail"]


def test_a_rollback_records_its_reason_or_that_none_was_given_and_knows_its_actions():
    """The reason is recorded as given; without one the record says so; an unknown action is
    bad input."""
    assert rollback_phase.stated_reason(" INC-9 ", _staging()) == "INC-9"
    assert rollback_phase.stated_reason("", _staging()).startswith(
        "not given (`runbook rollback --reason"
    )
    with pytest.raises(ParamsError, match="function_action"):
        rollback_phase.rollback_function(_staging(), "remove")


def test_rollback_after_a_dry_run_deployment_restores_nothing_touches_no_function_and_says_so(
    own, tmp_path, tmp_params_dir
):
    """Staging-shaped params, 03 a dry run and no cleanup: the real phase 90 SUCCEEDS, says there
    was no data to restore and that nothing was deployed, and the log says ROLLED BACK."""
    local = (tmp_params_dir / "local.yaml").read_text()
    (tmp_params_dir / "staging.yaml").write_text(local.replace("env: local", "env: staging"))
    commit(own, "v1")
    write_phase(tmp_path / "nb", "00_first", ['phase.check("c", True)'])
    write_phase(
        tmp_path / "nb",
        "03_fn",
        ['phase.record("function", {"deployed": False})', 'phase.check("c", True)'],
    )
    run = runner.run("staging", notebooks_dir=tmp_path / "nb", out_root=tmp_path / "out")
    rolled = runner.rollback(
        run.run_dir, notebooks_dir=paths.NOTEBOOKS_DIR, function={"reason": "rehearsal"}
    )
    rec = rolled.records[0]
    assert rec["status"] == "SUCCEEDED"
    assert rec["checks"][0]["check"].startswith("no data to restore")
    assert "was a dry run" in rec["results"]["function"]["detail"]
    status = (run.run_dir / "deployment_log.md").read_text().split("**Status:** ", 1)[1]
    assert status.startswith("ROLLED BACK") and "0 rows restored to 0 table(s)" in status
