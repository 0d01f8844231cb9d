"""What differs between a described resource and the deployment plan (empty: nothing to do).

The function is compared on everything the deploy command sets, its env vars included (the
bundle digest among them, so new code is a change); the scheduler job on schedule, time zone,
topic and message body.
"""

from __future__ import annotations

import base64
import re

from runbook_lib.platform.deployment import DeployPlan


def _memory_mb(text) -> int | None:
    m = re.fullmatch(r"(\d+)\s*(M|MB|Mi|MiB|G|GB|Gi|GiB)?", str(text or ""))
    if not m:
        return None
    return int(m.group(1)) * (1024 if (m.group(2) or "M").startswith("G") else 1)


def function_drift(plan: DeployPlan, described: dict) -> list[str]:
    """Return what differs between the described function and the plan (empty: no change)."""
    build, service = described.get("buildConfig", {}), described.get("serviceConfig", {})
    have_env = service.get("environmentVariables", {})
    checks = {
        "runtime": (build.get("runtime"), plan.runtime),
        "entry point": (build.get("entryPoint"), plan.entry_point),
        "service account": (service.get("serviceAccountEmail"), plan.service_account),
        "trigger topic": (described.get("eventTrigger", {}).get("pubsubTopic"), plan.topic_path),
        "timeout": (str(service.get("timeoutSeconds")), plan.timeout.rstrip("s")),
        "memory": (_memory_mb(service.get("availableMemory")), _memory_mb(plan.memory)),
    }
    drift = [name for name, (have, want) in checks.items() if have != want]
    drift += [f"env {k}" for k, v in sorted(plan.env_vars.items()) if have_env.get(k) != v]
    return drift


def job_drift(plan: DeployPlan, job: dict) -> list[str]:
    """Return what differs between the described scheduler job and the plan."""
    target = job.get("pubsubTarget", {})
    body = base64.b64decode(target.get("data", "")).decode(errors="replace")
    return [
        k
        for k, have, want in (
            ("schedule", job.get("schedule"), plan.schedule),
            ("time zone", job.get("timeZone"), plan.time_zone),
            ("topic", target.get("topicName"), plan.topic_path),
            ("message body", body, plan.message_body),
        )
        if have != want
    ]
