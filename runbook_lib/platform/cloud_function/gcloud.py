"""Run gcloud bound to one project and region, and validate a schedule before any command.

The runner refuses a command without `--project`, for another project, or (for functions,
Cloud Run and Cloud Scheduler) for another region, before it runs anything. A command whose
first word is `bq` runs the Cloud SDK's `bq` instead (dataset grants), bound by `--project_id`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import shutil
import subprocess
import zoneinfo

from cronsim import CronSim, CronSimError

from runbook_lib.errors import DeployError, EnvironmentMismatchError


def validate_cron(expr: str) -> str:
    """Return `expr` if it is a 5-field cron expression that fires, else raise DeployError.

    cronsim parses it as Cloud Scheduler's unix-cron does and refuses what never fires
    (`0 4 31 2 *`: February has no 31st); only the field count is checked here, because
    cronsim also takes a sixth (seconds) field, which Cloud Scheduler does not.
    """
    fields = str(expr).split()
    if len(fields) != 5:
        raise DeployError(
            f"cron {expr!r} has {len(fields)} fields, not 5 (to fix this, write "
            f"minute hour day-of-month month day-of-week, e.g. '0 4 * * *')"
        )
    try:
        CronSim(expr, dt.datetime(2000, 1, 1))
    except CronSimError as e:
        raise DeployError(f"cron {expr!r}: {_cron_problem(fields, e)}") from None
    return expr


def _cron_problem(fields: list[str], error: CronSimError) -> str:
    """Say why cronsim refused the fields: a field out of range, or a day no month given has."""
    try:
        CronSim(" ".join([*fields[:3], "*", fields[4]]), dt.datetime(2000, 1, 1))
    except CronSimError:
        return (
            f"{str(error).lower()} field (to fix this, correct cloud_function.schedule: each "
            f"field takes *, numbers in range, ranges a-b, lists and /steps)"
        )
    return (
        f"it never fires: day-of-month {fields[2]!r} never falls in month {fields[3]!r} (to "
        f"fix this, pick days that the months given have in cloud_function.schedule)"
    )


def validate_time_zone(name: str) -> str:
    """Return `name` if it is an IANA time zone, else raise DeployError."""
    try:
        zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DeployError(
            f"time zone {name!r} is unknown (to fix this, use an IANA name such "
            f"as America/New_York in cloud_function.time_zone)"
        ) from None
    return name


class GcloudRunner:
    """Run gcloud commands bound to one project and region; refuse any other."""

    def __init__(self, project: str, region: str, gcloud: str = "gcloud", timeout: float = 900):
        self.project, self.region, self.gcloud, self.timeout = project, region, gcloud, timeout
        self.bq = "bq"

    def check(self, args: list[str] | tuple[str, ...]) -> None:
        """Raise unless the command carries this project (and region where it has one)."""
        given = _flag(args, "--project_id" if args[0] == "bq" else "--project")
        if given is None:
            raise DeployError(f"command without --project refused: {shlex.join(args)}")
        if given != self.project or (args[0] == "projects" and args[2] != self.project):
            raise EnvironmentMismatchError(
                self.project, given if given != self.project else args[2]
            )
        flag = {"functions": "--region", "run": "--region", "scheduler": "--location"}.get(args[0])
        if flag and _flag(args, flag) != self.region:
            raise EnvironmentMismatchError(self.region, str(_flag(args, flag)), "region")

    def run(self, args: list[str] | tuple[str, ...]) -> subprocess.CompletedProcess:
        """Check and run one command (an argument list); return the completed process."""
        self.check(args)
        program, args = (self.bq, args[1:]) if args[0] == "bq" else (self.gcloud, args)
        path = shutil.which(program)
        if path is None:
            raise DeployError(
                f"{program} is not on PATH (to fix this, install the Google "
                f"Cloud SDK and run `gcloud auth login`)"
            )
        return subprocess.run(
            [path, *args], capture_output=True, text=True, timeout=self.timeout, check=False
        )

    def describe(self, args: list[str]) -> dict | None:
        """Run a describe command; return its JSON, or None when the resource does not exist."""
        proc = self.run(args)
        if proc.returncode == 0:
            return json.loads(proc.stdout or "{}")
        if re.search(r"NOT_FOUND|not found|404", proc.stderr, re.IGNORECASE):
            return None
        shown = shlex.join(args if args[0] == "bq" else ["gcloud", *args])
        raise DeployError(f"`{shown}` failed: {proc.stderr.strip()}")


def _flag(args, name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None
