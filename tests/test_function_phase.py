"""Phase 03 on staging/prod: plan, apply, trigger the job once and read the function's logs."""

from __future__ import annotations

import json

from runbook_lib.platform.cloud_function.bundle import build_bundle
from runbook_lib.run import function_phase, rollback_phase
from runbook_lib.run.params import load_params
from tests.test_deploy_plan import mutating


def test_dry_run_should_plan_every_resource_and_change_nothing(gcloud, tmp_path):
    params = load_params("staging")
    deployment = function_phase.deploy(params, build_bundle(tmp_path / "bundle"), dry_run=True)
    assert not deployment.applied and len(deployment.describe()) == 14  # cleanup + monitor
    assert mutating(gcloud) == []
    assert [c.ok for c in function_phase.deployment_checks(deployment)] == [True]  # planned
    dry = function_phase.run_checks(deployment, {}, None, None, {})
    assert [c.name for c in dry] == ["dry run: plan shown, nothing deployed or triggered"]
    assert function_phase.trigger(deployment)["http_status"] is None


def test_apply_should_deploy_then_trigger_the_job_and_read_the_summary_from_the_logs(gcloud, tmp_path):
    params = load_params("staging")
    deployment = function_phase.deploy(params, build_bundle(tmp_path / "bundle"), dry_run=False)
    assert deployment.applied
    answer = function_phase.trigger_and_stop(deployment, wait_seconds=0)
    assert answer["http_status"] == 200
    assert answer["summary"]["trigger"] == "scheduled"
    again = function_phase.deploy(params, build_bundle(tmp_path / "bundle2"), dry_run=False)
    assert {s.action for s in again.steps} == {"nothing"}


def test_deployment_check_should_fail_when_nothing_was_deployed_served_or_planned(tmp_path):
    nothing = function_phase.Deployment("staging", tmp_path)
    assert [c.ok for c in function_phase.deployment_checks(nothing)] == [False]


def test_phase_03_deploys_the_monitor_with_the_cleanup_and_rollback_pauses_both(gcloud, tmp_path):
    """Issue 11.3: the monitor's function and 06:00 job go out with the cleanup's, through the
    same plan; a rollback pauses both jobs (the monitor's is never deleted)."""
    params = load_params("staging")
    deployment = function_phase.deploy(params, build_bundle(tmp_path / "bundle"), dry_run=False)
    state = json.loads(gcloud.read_text())
    assert set(state["jobs"]) == {params.cloud_function.scheduler_job,
                                  params.monitor_function.scheduler_job}
    assert set(state["functions"]) == {params.cloud_function.name, params.monitor_function.name}
    assert state["jobs"][params.monitor_function.scheduler_job]["schedule"] == "0 6 * * *"
    assert deployment.applied
    result = rollback_phase.rollback_function(params)
    state = json.loads(gcloud.read_text())
    assert {j["state"] for j in state["jobs"].values()} == {"PAUSED"}
    assert params.monitor_function.scheduler_job in result["detail"]
