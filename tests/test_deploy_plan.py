"""The Cloud Function's deployment plan, applied against a stateful `gcloud` stand-in on PATH."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from runbook_lib import paths
from runbook_lib.cli import main
from runbook_lib.errors import DeployError, EnvironmentMismatchError
from runbook_lib.platform import deploy_plan
from runbook_lib.platform.cloud_function.gcloud import GcloudRunner, validate_cron
from runbook_lib.platform.deployment import DeployPlan
from runbook_lib.run.params import load_params
from tests.conftest import GCLOUD_STANDIN

SECRET_URL = "https://hooks.example.com/services/T0/B0/SECRETxyz"


def calls(state: Path) -> list[list[str]]:
    return json.loads(state.read_text())["calls"] if state.exists() else []


def plan_for(params, bundle, webhook_url=None) -> DeployPlan:
    """Return the deployment plan of an environment's params, as the runbook builds it."""
    config = params.function_config(webhook_url)
    return deploy_plan.build_plan(params.env, params.cloud_function, config, bundle)


def mutating(state: Path) -> list[list[str]]:
    reads = ("describe", "get-iam-policy", "list", "show")
    return [c for c in calls(state) if not any(r in c[:4] for r in reads)]


@pytest.fixture
def plan(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "main.py").write_text("# bundle\n")
    return plan_for(load_params("staging"), bundle)


@pytest.fixture
def runner(plan) -> GcloudRunner:
    return GcloudRunner(plan.project, plan.region)


def test_first_apply_creates_everything_and_second_apply_is_all_no_ops(gcloud, plan, runner):
    first = deploy_plan.apply(plan, runner)
    # topic, its IAM, project IAM (jobUser), dataEditor on each of two datasets, function, job
    assert [s.action for s in first.steps] == ["create"] * 7
    assert first.previous_revision is None
    assert len(mutating(gcloud)) == 7
    second = deploy_plan.apply(plan, runner)
    assert [s.action for s in second.steps] == ["nothing"] * 7
    assert not second.changed and len(mutating(gcloud)) == 7
    assert second.previous_revision == "upcoming-tables-cleanup-00001-abc"


def test_every_command_carries_the_project_and_its_location(gcloud, plan, runner):
    deploy_plan.apply(plan, runner)
    for call in calls(gcloud):
        if call[0] == "bq":  # the dataset grants: bq's own flag
            assert "--project_id=nba-props-staging" in call
            continue
        assert call[call.index("--project") + 1] == "nba-props-staging"
        if call[0] in ("functions", "scheduler"):
            assert ("--region" in call) or ("--location" in call)


def test_changed_schedule_is_a_scheduler_update_only(gcloud, plan, runner):
    deploy_plan.apply(plan, runner)
    before = len(mutating(gcloud))
    moved = DeployPlan(**{**plan.__dict__, "schedule": "30 5 * * *"})
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
    changed = plan_for(load_params("staging"), plan.bundle_dir)
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
        plan_for(params, tmp_path)
    assert calls(gcloud) == []


@pytest.mark.parametrize("schedule", ["0 4 31 2 *", "0 4 30 2 *", "0 4 31 4,6,9,11 *"])
def test_cron_that_never_fires_is_rejected_by_name_before_any_command(gcloud, tmp_path, schedule):
    params = load_params("staging", {"cloud_function.schedule": schedule})
    with pytest.raises(DeployError, match="never fires") as e:
        plan_for(params, tmp_path)
    assert "cloud_function.schedule" in str(e.value)
    assert calls(gcloud) == []


def test_valid_cron_forms_are_accepted():
    for expr in ("0 4 * * *", "*/15 0-23 1,15 JAN-MAR MON-FRI", "0 4 * * 7", "0 4 29 2 *"):
        assert validate_cron(expr) == expr


def test_unknown_time_zone_is_rejected_before_any_command(gcloud, tmp_path):
    params = load_params("staging", {"cloud_function.time_zone": "America/Gotham"})
    with pytest.raises(DeployError, match="time zone"):
        plan_for(params, tmp_path)
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
        plan_for(load_params("local"), tmp_path)


@pytest.fixture
def secret_plan(plan):
    """The staging plan with a Slack-style webhook (its secret in the path) in the env vars."""
    return plan_for(load_params("staging"), plan.bundle_dir, SECRET_URL)


@pytest.fixture
def secret_params_dir(tmp_path, monkeypatch):
    """A params folder whose staging.yaml sets alerts.webhook_url to SECRET_URL."""
    folder = tmp_path / "params"
    folder.mkdir()
    text = (paths.PARAMS_DIR / "staging.yaml").read_text()
    (folder / "staging.yaml").write_text(
        text.replace("webhook_url: null", f"webhook_url: {SECRET_URL}")
    )
    monkeypatch.setattr(paths, "PARAMS_DIR", folder)
    assert load_params("staging").alerts.webhook_url == SECRET_URL
    return folder


def test_apply_passes_env_vars_in_a_private_file_never_on_argv_and_removes_it(
    gcloud, secret_plan, runner
):
    deploy_plan.apply(secret_plan, runner)
    assert not [c for c in calls(gcloud) if any("SECRETxyz" in a for a in c)]
    state = json.loads(gcloud.read_text())
    [env_file] = state["env_files"]
    assert env_file["mode"] == "0o600" and not Path(env_file["path"]).exists()
    deployed = state["functions"]["upcoming-tables-cleanup"]["serviceConfig"]
    assert deployed["environmentVariables"]["ALERT_WEBHOOK_URL"] == SECRET_URL
    again = deploy_plan.apply(secret_plan, runner)  # the drift check still sees every env var
    assert [s.action for s in again.steps] == ["nothing"] * 7


def test_changed_webhook_is_drift_that_redeploys_the_function(gcloud, secret_plan, runner):
    deploy_plan.apply(secret_plan, runner)
    moved = plan_for(load_params("staging"), secret_plan.bundle_dir, SECRET_URL + "2")
    [step] = [s for s in deploy_plan.apply(moved, runner).steps if s.resource == "function"]
    assert step.action == "update" and "env ALERT_WEBHOOK_URL" in step.reason


@pytest.mark.parametrize("described", [True, False], ids=["with-gcloud", "without-gcloud"])
def test_printed_plan_masks_the_webhook_and_shows_the_other_env_vars(
    gcloud, secret_params_dir, plan, capsys, monkeypatch, described
):
    if not described:
        monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["function", "plan", "--env", "staging", "--bundle", plan.bundle_dir]) == 0
    out = capsys.readouterr().out
    assert ("describe first" in out) is not described
    assert "SECRETxyz" not in out and "/services/" not in out
    assert "ALERT_WEBHOOK_URL=https://hooks.example.com/****" in out
    assert f"BUNDLE_DIGEST={plan.env_vars['BUNDLE_DIGEST']}" in out


def test_failed_deploy_error_masks_the_webhook_gcloud_echoed(gcloud, secret_plan, runner):
    # A gcloud that rejects the env file and prints it back, as a validation error may.
    script = gcloud.parent / "bin" / "gcloud"
    script.write_text(
        f"#!{sys.executable}\n"
        "import subprocess, sys\n"
        "a = sys.argv[1:]\n"
        "if a[:2] == ['functions', 'deploy']:\n"
        "    sys.stderr.write('ERROR: bad env: ' + open(a[a.index('--env-vars-file') + 1]).read())\n"
        "    sys.exit(1)\n"
        f"sys.exit(subprocess.call([sys.executable, {str(GCLOUD_STANDIN)!r}, *a]))\n"
    )
    with pytest.raises(DeployError, match="bad env") as caught:
        deploy_plan.apply(secret_plan, runner)
    assert "SECRETxyz" not in str(caught.value)
    assert "hooks.example.com/****" in str(caught.value)


def test_plan_without_credentials_lists_every_iam_binding_with_a_project_number_placeholder(plan):
    steps = deploy_plan.static_steps(plan)
    agent = "serviceAccount:service-<PROJECT_NUMBER>@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
    bindings = {s.resource: s for s in steps if s.resource.endswith("IAM")}
    topic, project = bindings["topic IAM"], bindings["project IAM"]
    assert topic.command[:4] == ("pubsub", "topics", "add-iam-policy-binding", plan.topic)
    assert (flag(topic.command, "--member"), flag(topic.command, "--role")) == (
        agent,
        "roles/pubsub.publisher",
    )
    member = f"serviceAccount:{plan.service_account}"
    assert (flag(project.command, "--member"), flag(project.command, "--role")) == (
        member,
        "roles/bigquery.jobUser",
    )
    text = deploy_plan.format_plan(plan, steps)
    assert "service-<PROJECT_NUMBER>@gcp-sa-cloudscheduler" in text
    assert "roles/bigquery.jobUser" in text


def test_the_function_gets_job_rights_on_the_project_and_data_rights_on_two_datasets_only(
    gcloud, plan, runner
):
    assert plan.datasets == ("nba_analytics", "nba_orchestration")
    deploy_plan.apply(plan, runner)
    state = json.loads(gcloud.read_text())
    member = f"serviceAccount:{plan.service_account}"
    assert state["project_iam"] == {"roles/bigquery.jobUser": [member]}  # no project dataEditor
    assert state["dataset_access"] == {
        d: [{"role": "roles/bigquery.dataEditor", "iamMember": member}] for d in plan.datasets
    }
    grants = [c for c in calls(gcloud) if c[:2] == ["bq", "query"]]
    assert [g[2:4] for g in grants] == [[f"--project_id={plan.project}", "--location=US"]] * 2
    text = deploy_plan.format_plan(plan, deploy_plan.static_steps(plan))
    assert "bq query --project_id=nba-props-staging --location=US --use_legacy_sql=false 'GRANT " \
        "`roles/bigquery.dataEditor` ON SCHEMA `nba-props-staging.nba_analytics`" in text


def test_a_bq_command_for_another_project_is_refused_before_it_runs(gcloud, plan, runner):
    other = ("bq", "show", "--format=prettyjson", "--project_id=nba-props-platform", "x:y")
    with pytest.raises(EnvironmentMismatchError):
        runner.run(other)
    assert calls(gcloud) == []


def flag(command, name):
    return command[command.index(name) + 1]


def test_plan_command_removes_the_bundle_it_built(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")  # the plan without credentials: static steps
    assert main(["function", "plan", "--env", "staging"]) == 0
    source = re.search(r"--source (\S+)", capsys.readouterr().out).group(1)
    assert "function-bundle-" in source and not Path(source).exists()
