"""The desired state of the Cloud Function's resources in one project and region (`DeployPlan`).

Its own module so that what builds the commands (deploy_commands.py), what compares a described
resource with it (cloud_function/drift.py) and what orchestrates a deployment (deploy_plan.py)
all import it from below, with no circle between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runbook_lib.secrets import masked_env


@dataclass(frozen=True)
class DeployPlan:
    """The desired state of the function's resources in one project and region."""

    project: str
    region: str
    topic: str
    function: str
    job: str
    schedule: str
    time_zone: str
    service_account: str
    runtime: str
    entry_point: str
    timeout: str
    memory: str
    bundle_dir: str
    # Out of the repr: a displayed plan must not show the webhook; `masked_env` is for showing.
    env_vars: dict[str, str] = field(default_factory=dict, repr=False)
    message_body: str = '{"trigger":"scheduled"}'
    # The datasets the function edits (its service account gets dataEditor on each, nothing
    # project-wide but jobUser) and their location, where its grants run as BigQuery DCL.
    datasets: tuple[str, ...] = ()
    location: str = "US"

    @property
    def topic_path(self) -> str:
        """Return the topic's full resource name."""
        return f"projects/{self.project}/topics/{self.topic}"

    @property
    def masked_env(self) -> dict[str, str]:
        """Return the function's env vars with secret-looking values masked, for display."""
        return masked_env(self.env_vars)
