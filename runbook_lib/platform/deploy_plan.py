"""The Cloud Function's deployment plan: topic, IAM, function, scheduler job, each idempotent.

Every resource is described first, then created, updated or left alone; the commands that change
something are built in deploy_commands.py, always with `--project` and the resource's region, and
the runner refuses a command for another project or region before running it. The scheduler job
is described and then created or updated. The cron expression and time zone are validated before
any command. The function's serving revision is recorded before a deploy so a rollback can route
traffic back to it. Secret-looking env vars (the alert webhook) are masked in every printed plan
and error, and reach gcloud only through a private env-vars file.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from runbook_lib.config import CloudFunctionConfig
from runbook_lib.errors import DeployError
from runbook_lib.platform.cloud_function.bundle import bundle_digest
from runbook_lib.platform.cloud_function.config import FunctionConfig
from runbook_lib.platform.cloud_function.drift import function_drift, job_drift
from runbook_lib.platform.cloud_function.gcloud import (
    GcloudRunner,
    validate_cron,
    validate_time_zone,
)
from runbook_lib.platform.deploy_commands import (
    DATA_EDITOR,
    ENV_VARS_FILE,
    JOB_USER,
    dataset_binding,
    dataset_show,
    deploy_command,
    env_vars_file,
    job_command,
    job_state_command,
    project_binding,
    project_flags,
    rollback_commands,
    topic_binding,
    topic_create,
    with_env_vars_file,
)
from runbook_lib.platform.deployment import DeployPlan
from runbook_lib.secrets import redact_known

SCHEDULER_AGENT = "service-{number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
# Shown in a plan made without credentials: only `projects describe` knows the number.
PROJECT_NUMBER_PLACEHOLDER = "<PROJECT_NUMBER>"


def build_plan(
    env: str, deploy: CloudFunctionConfig, function: FunctionConfig, bundle_dir: str | Path
) -> DeployPlan:
    """Return the desired deployment of an environment's function; validate schedule and zone.

    `deploy` is the environment's cloud_function section, `function` the config the deployed
    function runs with (its environment variables).
    """
    if function.warehouse.is_local:
        raise DeployError(
            f"environment {env!r} is the embedded warehouse and has no "
            f"Cloud project (to fix this, use `runbook function serve --env "
            f"{env}` locally, or plan for staging or prod)"
        )
    cf = deploy
    validate_cron(cf.schedule)
    validate_time_zone(cf.time_zone)
    env_vars = {**function.to_env(), "BUNDLE_DIGEST": bundle_digest(bundle_dir)}
    datasets = function.warehouse.datasets
    edited = tuple(sorted({datasets["analytics"], datasets["orchestration"]}))
    return DeployPlan(
        function.warehouse.project,
        cf.region,
        cf.topic,
        cf.name,
        cf.scheduler_job,
        cf.schedule,
        cf.time_zone,
        cf.service_account,
        cf.runtime,
        cf.entry_point,
        cf.timeout,
        cf.memory,
        str(Path(bundle_dir).resolve()),
        env_vars,
        datasets=edited,
        location=function.warehouse.location,
    )


@dataclass(frozen=True)
class Step:
    """One resource's decision: create, update, resume, nothing (or describe-first on a dry run)."""

    resource: str
    name: str
    action: str
    command: tuple[str, ...] | None = None
    reason: str = ""


def check_gcloud_access(plan: DeployPlan, runner: GcloudRunner) -> str:
    """Check gcloud, credentials and project access before anything changes; return the number."""
    if shutil.which(runner.gcloud) is None:
        raise DeployError(
            f"{runner.gcloud} is not on PATH; nothing was changed (to fix this, "
            f"install the Google Cloud SDK and run `gcloud auth login`)"
        )
    p = project_flags(plan)
    proc = runner.run(["auth", "list", "--filter=status:ACTIVE", "--format=value(account)", *p])
    if proc.returncode != 0 or not proc.stdout.strip():
        raise DeployError(
            "gcloud has no active credentials; nothing was changed (to fix this, "
            "run `gcloud auth login` or activate a service account)"
        )
    info = runner.describe(["projects", "describe", plan.project, *p, "--format=json"])
    if not info or not info.get("projectNumber"):
        raise DeployError(
            f"project {plan.project} is not visible to these credentials; nothing "
            f"was changed (to fix this, check the account's access)"
        )
    return str(info["projectNumber"])


def _has_binding(policy: dict | None, role: str, member: str) -> bool:
    return any(
        b.get("role") == role and member in b.get("members", [])
        for b in (policy or {}).get("bindings", [])
    )


def resolve(plan: DeployPlan, runner: GcloudRunner, project_number: str) -> list[Step]:
    """Describe every resource and decide create, update, resume or nothing for each."""
    return [
        *_topic_steps(plan, runner, project_number),
        _project_iam_step(plan, runner),
        *_dataset_iam_steps(plan, runner),
        _function_step(plan, runner),
        *_job_steps(plan, runner),
    ]


def scheduler_agent(project_number: str) -> str:
    """Return the IAM member of the project's Cloud Scheduler service agent."""
    return "serviceAccount:" + SCHEDULER_AGENT.format(number=project_number)


def _topic_steps(plan: DeployPlan, runner: GcloudRunner, project_number: str) -> list[Step]:
    p = project_flags(plan)
    topic = runner.describe(["pubsub", "topics", "describe", plan.topic, *p, "--format=json"])
    agent = scheduler_agent(project_number)
    policy = (
        runner.describe(["pubsub", "topics", "get-iam-policy", plan.topic, *p, "--format=json"])
        if topic
        else None
    )
    return [
        Step("topic", plan.topic, "nothing", reason="exists")
        if topic
        else Step("topic", plan.topic, "create", topic_create(plan)),
        _binding_step(
            "topic IAM",
            _topic_binding_name(agent),
            _has_binding(policy, "roles/pubsub.publisher", agent),
            topic_binding(plan, agent),
        ),
    ]


def _topic_binding_name(agent: str) -> str:
    return f"{agent} roles/pubsub.publisher"


def _project_binding_name(member: str) -> str:
    return f"{member} {JOB_USER}"


def _dataset_binding_name(member: str, dataset: str) -> str:
    return f"{member} {DATA_EDITOR} on {dataset}"


def _dataset_iam_steps(plan: DeployPlan, runner: GcloudRunner) -> list[Step]:
    """Describe each edited dataset's access; grant dataEditor where the account lacks it."""
    member = f"serviceAccount:{plan.service_account}"
    steps = []
    for dataset in plan.datasets:
        described = runner.describe(dataset_show(plan, dataset))
        present = any(
            entry.get("role") in ("WRITER", DATA_EDITOR)
            and member in (f"serviceAccount:{entry.get('userByEmail')}", entry.get("iamMember"))
            for entry in (described or {}).get("access", [])
        )
        step = _binding_step(
            "dataset IAM",
            _dataset_binding_name(member, dataset),
            present,
            dataset_binding(plan, dataset, member),
        )
        if described is None:  # the grant fails on a dataset that does not exist
            step = Step(step.resource, step.name, step.action, step.command,
                        reason=f"dataset {dataset} not found: create it first")
        steps.append(step)
    return steps


def _project_iam_step(plan: DeployPlan, runner: GcloudRunner) -> Step:
    member = f"serviceAccount:{plan.service_account}"
    policy = runner.describe(
        ["projects", "get-iam-policy", plan.project, *project_flags(plan), "--format=json"]
    )
    return _binding_step(
        "project IAM",
        _project_binding_name(member),
        _has_binding(policy, JOB_USER, member),
        project_binding(plan, member),
    )


def _binding_step(resource: str, name: str, present: bool, command: tuple) -> Step:
    return (
        Step(resource, name, "nothing", reason="binding present")
        if present
        else Step(resource, name, "create", command)
    )


def _describe_function(plan: DeployPlan, runner: GcloudRunner) -> dict | None:
    return runner.describe(
        [
            "functions",
            "describe",
            plan.function,
            "--gen2",
            "--region",
            plan.region,
            *project_flags(plan),
            "--format=json",
        ]
    )


def _function_step(plan: DeployPlan, runner: GcloudRunner) -> Step:
    described = _describe_function(plan, runner)
    if described is None:
        return Step("function", plan.function, "create", deploy_command(plan))
    revision = described.get("serviceConfig", {}).get("revision", "")
    drift = function_drift(plan, described)
    if not drift:
        return Step("function", plan.function, "nothing", reason=f"serving {revision}")
    return Step(
        "function",
        plan.function,
        "update",
        deploy_command(plan),
        reason=f"changed: {', '.join(drift)}; serving revision before deploy: {revision}",
    )


def job_exists(plan: DeployPlan, runner: GcloudRunner) -> bool:
    """Return whether the plan's scheduler job exists (described, not assumed)."""
    return _describe_job(plan, runner) is not None


def _describe_job(plan: DeployPlan, runner: GcloudRunner) -> dict | None:
    return runner.describe(
        [
            "scheduler",
            "jobs",
            "describe",
            plan.job,
            "--location",
            plan.region,
            *project_flags(plan),
            "--format=json",
        ]
    )


def _job_steps(plan: DeployPlan, runner: GcloudRunner) -> list[Step]:
    job = _describe_job(plan, runner)
    if job is None:
        return [Step("scheduler job", plan.job, "create", job_command(plan, "create"))]
    drift = job_drift(plan, job)
    steps = [
        Step(
            "scheduler job",
            plan.job,
            "update",
            job_command(plan, "update"),
            reason=f"changed: {', '.join(drift)}",
        )
        if drift
        else Step("scheduler job", plan.job, "nothing", reason="matches")
    ]
    if job.get("state") == "PAUSED":
        steps.append(
            Step(
                "scheduler job",
                plan.job,
                "resume",
                job_state_command(plan, "resume"),
                reason="paused (a rollback paused it)",
            )
        )
    return steps


@dataclass(frozen=True)
class ApplyResult:
    """What an apply did: every step, the commands run, the revision serving before it."""

    steps: tuple[Step, ...]
    executed: tuple[tuple[str, ...], ...]
    previous_revision: str | None

    @property
    def changed(self) -> bool:
        """Return whether any command changed something."""
        return bool(self.executed)


def apply(plan: DeployPlan, runner: GcloudRunner) -> ApplyResult:
    """Run the plan: check gcloud access, describe everything, then run each create, update or resume."""
    number = check_gcloud_access(plan, runner)
    steps = resolve(plan, runner, number)
    previous = serving_revision(plan, runner)
    executed = []
    for step in steps:
        if step.command is None:
            continue
        proc = _run_step(plan, runner, step.command)
        if proc.returncode != 0:
            raise DeployError(
                f"{step.action} of {step.resource} {step.name} failed: "
                f"{redact_known(proc.stderr.strip(), plan.env_vars)} "
                f"(done before it: {len(executed)} command(s); previous revision "
                f"{previous or 'none'}; to fix this, correct the cause and apply again: "
                f"finished steps are no-ops)"
            )
        executed.append(step.command)
    return ApplyResult(tuple(steps), tuple(executed), previous)


def _run_step(plan: DeployPlan, runner: GcloudRunner, command: tuple[str, ...]):
    if ENV_VARS_FILE not in command:
        return runner.run(command)
    with env_vars_file(plan.env_vars) as path:
        return runner.run(with_env_vars_file(command, path))


def serving_revision(plan: DeployPlan, runner: GcloudRunner) -> str | None:
    """Return the function's serving revision, or None when it is not deployed."""
    described = _describe_function(plan, runner)
    return (described or {}).get("serviceConfig", {}).get("revision") or None


def rollback(
    plan: DeployPlan, runner: GcloudRunner, action: str, revision: str | None = None
) -> tuple[str, ...]:
    """Run one rollback action after the gcloud access check; return the command run."""
    check_gcloud_access(plan, runner)
    command = rollback_commands(plan, action, revision)
    proc = runner.run(command)
    if proc.returncode != 0:
        raise DeployError(
            f"rollback {action} failed: {redact_known(proc.stderr.strip(), plan.env_vars)}"
        )
    return command


def static_steps(plan: DeployPlan) -> list[Step]:
    """Return the plan without describing anything (a dry run where gcloud cannot be used)."""
    agent = scheduler_agent(PROJECT_NUMBER_PLACEHOLDER)
    member = f"serviceAccount:{plan.service_account}"
    resolve_number = f"resolve {PROJECT_NUMBER_PLACEHOLDER} with `gcloud projects describe`"
    return [
        Step("topic", plan.topic, "describe first", topic_create(plan)),
        Step(
            "topic IAM",
            _topic_binding_name(agent),
            "describe first",
            topic_binding(plan, agent),
            reason=resolve_number,
        ),
        Step(
            "project IAM",
            _project_binding_name(member),
            "describe first",
            project_binding(plan, member),
        ),
        *(
            Step(
                "dataset IAM",
                _dataset_binding_name(member, dataset),
                "describe first",
                dataset_binding(plan, dataset, member),
            )
            for dataset in plan.datasets
        ),
        Step("function", plan.function, "describe first", deploy_command(plan)),
        Step("scheduler job", plan.job, "describe first", job_command(plan, "create")),
    ]


def shown_command(command: tuple[str, ...]) -> str:
    """Return a planned command as typed: `bq ...` for the dataset grants, else `gcloud ...`."""
    return shlex.join(command if command[0] == "bq" else ("gcloud", *command))


def format_plan(plan: DeployPlan, steps: list[Step]) -> str:
    """Return the plan as text: one line per resource and the command it would run."""
    lines = [
        f"Deployment plan for project {plan.project}, region {plan.region}: function "
        f"{plan.function} ({plan.runtime}), topic {plan.topic}, job {plan.job} "
        f"'{plan.schedule}' {plan.time_zone}",
        "  function env (written to a private file at apply): "
        + ", ".join(f"{k}={v}" for k, v in sorted(plan.masked_env.items())),
    ]
    for s in steps:
        lines.append(
            f"  {s.action:>14}  {s.resource} {s.name}" + (f"  ({s.reason})" if s.reason else "")
        )
        if s.command:
            lines.append(f"                  {shown_command(s.command)}")
    return "\n".join(lines)
