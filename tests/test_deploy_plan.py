"""The Cloud Function's deployment plan, applied against a stateful `gcloud` stand-in on PATH."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib.errors import DeployError, EnvironmentMismatchError
from runbook_lib.platform import deploy_plan
from runbook_lib.platform.cloud_function.gcloud import GcloudRunner, validate_cron
from runbook_lib.run.params import load_params


def calls(state: Path) -> list[list[str]]:
    return json.loads(state.read_text())["calls"] if state.exists() else []


def mutating(state: Path) -> list[list[str]]:
    reads = ("describe", "get-iam-policy", "list")
    return [c for c in calls(state) if not any(r in c[:4] for r in reads)]


@pytest.fixture
def plan(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "main.py").write_text("# bundle\n")
    return deploy_plan.build_plan(load_params("staging"), bundle)


@pytest.fixture
def runner(plan) -> GcloudRunner:
    return GcloudRunner(plan.project, plan.region)


def test_first_apply_creates_everything_and_second_apply_is_all_no_ops(gcloud, plan, runner):
    first = deploy_plan.apply(plan, runner)
    assert [s.action for s in first.steps] == ["create"] * 5
    assert first.previous_revision is None
    assert len(mutating(gcloud)) == 5
    second = deploy_plan.apply(plan, runner)
    assert [s.action for s in second.steps] == ["nothing"] * 5
    assert not second.changed and len(mutating(gcloud)) == 5
    assert second.previous_revision == "upcoming-tables-cleanup-00001-abc"


def test_every_command_carries_the_project_and_its_location(gcloud, plan, runner):
    deploy_plan.apply(plan, runner)
    for call in calls(gcloud):
        assert call[call.index("--project") + 1] == "nba-props-staging"
        if call[0] in ("functions", "scheduler"):
            assert ("--region" in call) or ("--location" in call)


def test_changed_schedule_is_a_scheduler_update_only(gcloud, plan, runner):
    deploy_plan.apply(plan, runner)
    before = len(mutating(gcloud))
    moved = deploy_plan.DeployPlan(**{**plan.__dict__, "schedule": "30 5 * * *"})
    result = deploy_plan.apply(moved, runner)
    assert [(s.resource, s.action) for s in result.steps if s.action != "nothing"] == [
        ("scheduler job", "update")
    ]
    new = mutating(gcloud)[before:]
    assert len(new) == 1 and new[0][:4] == ["scheduler", "jobs", "update", "pubsub"]
    assert new[0][new[0].index("--schedule") + 1] == "30 5 * * *"


def test_changed_bundle_redeploys_the_function_and_records_the_serving_revision(
    gcloud, plan, runner
):
    deploy_plan.apply(plan, runner)
    (Path(plan.bundle_dir) / "main.py").write_text("# changed code\n")
    changed = deploy_plan.build_plan(load_params("staging"), plan.bundle_dir)
    result = deploy_plan.apply(changed, runner)
    assert [s.action for s in result.steps if s.resource == "function"] == ["update"]
    assert result.previous_revision == "upcoming-tables-cleanup-00001-abc"
    assert deploy_plan.serving_revision(plan, runner) == "upcoming-tables-cleanup-00002-abc"


def test_paused_job_is_resumed_and_rollbacks_pause_and_delete(gcloud, plan, runner):
    deploy_plan.apply(plan, runner)
    deploy_plan.rollback(plan, runner, "pause")
    assert [s.action for s in deploy_plan.apply(plan, runner).steps][-1] == "resume"
    deploy_plan.rollback(plan, runner, "delete")
    assert deploy_plan.serving_revision(plan, runner) is None


@pytest.mark.parametrize(
    "schedule", ["0 4 * *", "0 24 * * *", "61 4 * * *", "0 4 * 13 *", "x 4 * * *", "0 4 5-1 * *"]
)
def test_malformed_cron_is_rejected_before_any_command(gcloud, tmp_path, schedule):
    params = load_params("staging", {"cloud_function.schedule": schedule})
    with pytest.raises(DeployError, match="cron"):
        deploy_plan.build_plan(params, tmp_path)
    assert calls(gcloud) == []


def test_valid_cron_forms_are_accepted():
    for expr in ("0 4 * * *", "*/15 0-23 1,15 JAN-MAR MON-FRI", "0 4 * * 7"):
        assert validate_cron(expr) == expr


def test_unknown_time_zone_is_rejected_before_any_command(gcloud, tmp_path):
    params = load_params("staging", {"cloud_function.time_zone": "America/Gotham"})
    with pytest.raises(DeployError, match="time zone"):
        deploy_plan.build_plan(params, tmp_path)
    assert calls(gcloud) == []


def test_command_for_another_project_is_refused_before_it_runs(gcloud, plan):
    runner = GcloudRunner("nba-props-platform", plan.region)
    with pytest.raises(EnvironmentMismatchError):
        deploy_plan.apply(plan, runner)
    assert calls(gcloud) == []


def test_missing_gcloud_is_a_clear_error_before_anything_changes(plan, runner, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DeployError, match="not on PATH"):
        deploy_plan.apply(plan, runner)


def test_local_environment_has_no_deployment_plan(tmp_path):
    with pytest.raises(DeployError, match="serve"):
        deploy_plan.build_plan(load_params("local"), tmp_path)
