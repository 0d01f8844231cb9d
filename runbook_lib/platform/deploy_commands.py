"""The gcloud commands that change something, for the function's deployment and its rollback.

Every command is an argument list (never a shell string) that carries `--project` (`bq`'s
`--project_id` for the dataset grants, which gcloud has no command for), and
`--region`/`--location` where the resource has one, so `GcloudRunner.check` can refuse one for
another project or region. Cloud Scheduler `create` fails on an existing job and `update pubsub`
takes its own flags, so the job has a create and an update command. The function's environment
(which holds the alert webhook, a credential) never goes on argv, where `ps` and shell history
would see it: the deploy command names a placeholder that `env_vars_file` turns into a private
YAML file for the one command that needs it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml

from runbook_lib.errors import DeployError
from runbook_lib.platform.deployment import DeployPlan

PUBLISHER = "roles/pubsub.publisher"
DATA_EDITOR = "roles/bigquery.dataEditor"
JOB_USER = "roles/bigquery.jobUser"
# Stands for the private env-vars file in a planned command; replaced only while it runs.
ENV_VARS_FILE = "<private env-vars file>"


def project_flags(plan: DeployPlan) -> list[str]:
    """Return the `--project` flag every command carries."""
    return ["--project", plan.project]


def topic_create(plan: DeployPlan) -> tuple[str, ...]:
    """Return the command that creates the function's trigger topic."""
    return ("pubsub", "topics", "create", plan.topic, *project_flags(plan))


def deploy_command(plan: DeployPlan) -> tuple[str, ...]:
    """Return the `functions deploy` command (it creates or updates the gen2 function)."""
    return (
        "functions",
        "deploy",
        plan.function,
        "--gen2",
        "--runtime",
        plan.runtime,
        "--region",
        plan.region,
        *project_flags(plan),
        "--source",
        plan.bundle_dir,
        "--entry-point",
        plan.entry_point,
        "--trigger-topic",
        plan.topic,
        "--timeout",
        plan.timeout,
        "--memory",
        plan.memory,
        "--service-account",
        plan.service_account,
        "--env-vars-file",
        ENV_VARS_FILE,
    )


@contextmanager
def env_vars_file(env_vars: Mapping[str, str]) -> Iterator[Path]:
    """Write the env vars to a private YAML file (mode 0600) for one command; remove it after."""
    # mkstemp creates the file 0600 (owner only) atomically: no window where others can read it.
    fd, name = tempfile.mkstemp(prefix="function-env-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump({k: str(v) for k, v in sorted(env_vars.items())}, f)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def with_env_vars_file(command: tuple[str, ...], path: Path) -> tuple[str, ...]:
    """Return `command` with the env-vars placeholder replaced by the file's path."""
    return tuple(str(path) if a == ENV_VARS_FILE else a for a in command)


def topic_binding(plan: DeployPlan, agent: str) -> tuple[str, ...]:
    """Return the command that lets the scheduler's agent publish to the topic."""
    return (
        "pubsub",
        "topics",
        "add-iam-policy-binding",
        plan.topic,
        *project_flags(plan),
        "--member",
        agent,
        "--role",
        PUBLISHER,
    )


def project_binding(plan: DeployPlan, member: str) -> tuple[str, ...]:
    """Return the command that lets the function's service account run BigQuery jobs."""
    return (
        "projects",
        "add-iam-policy-binding",
        plan.project,
        *project_flags(plan),
        "--member",
        member,
        "--role",
        JOB_USER,
        "--condition=None",
    )


def dataset_show(plan: DeployPlan, dataset: str) -> tuple[str, ...]:
    """Return the `bq` command that describes a dataset and its access entries."""
    return ("bq", "show", "--format=prettyjson", f"--project_id={plan.project}",
            f"{plan.project}:{dataset}")


def dataset_binding(plan: DeployPlan, dataset: str, member: str) -> tuple[str, ...]:
    """Return the `bq` command that grants dataEditor on one dataset (BigQuery DCL)."""
    grant = f'GRANT `{DATA_EDITOR}` ON SCHEMA `{plan.project}.{dataset}` TO "{member}"'
    return ("bq", "query", f"--project_id={plan.project}", f"--location={plan.location}",
            "--use_legacy_sql=false", grant)


def job_command(plan: DeployPlan, verb: str) -> tuple[str, ...]:
    """Return the scheduler job's `create` or `update` command with every desired flag."""
    return (
        "scheduler",
        "jobs",
        verb,
        "pubsub",
        plan.job,
        "--location",
        plan.region,
        *project_flags(plan),
        "--schedule",
        plan.schedule,
        "--time-zone",
        plan.time_zone,
        "--topic",
        plan.topic,
        "--message-body",
        plan.message_body,
    )


def job_state_command(plan: DeployPlan, verb: str) -> tuple[str, ...]:
    """Return the scheduler job's `pause` or `resume` command."""
    return ("scheduler", "jobs", verb, plan.job, "--location", plan.region, *project_flags(plan))


def rollback_commands(plan: DeployPlan, action: str, revision: str | None = None) -> tuple:
    """Return a rollback command: 'pause' or 'delete_job' the job, 'delete' the function, or 'revision'."""
    if action == "pause":
        return job_state_command(plan, "pause")
    if action == "delete_job":  # before the function: a job left behind would publish to nothing
        return ("scheduler", "jobs", "delete", plan.job, "--location", plan.region,
                *project_flags(plan), "--quiet")  # fmt: skip
    if action == "delete":
        return (
            "functions",
            "delete",
            plan.function,
            "--gen2",
            "--region",
            plan.region,
            *project_flags(plan),
            "--quiet",
        )
    if action == "revision" and revision:
        # A gen2 function is served by the Cloud Run service of the same name.
        return (
            "run",
            "services",
            "update-traffic",
            plan.function,
            "--region",
            plan.region,
            *project_flags(plan),
            f"--to-revisions={revision}=100",
        )
    raise DeployError(
        f"unknown rollback {action!r} (to fix this, use pause, delete, or "
        f"revision with the revision recorded before the deploy)"
    )
