"""Configuration at the ground: one validated, frozen model per section of a params file.

Each part of the platform takes its own section: the warehouse backends `WarehouseConfig`, the
backfill `BackfillConfig`, the cleanup `CleanupConfig`, alerts `AlertsConfig`, the function's
deployment `CloudFunctionConfig`. run/params.py composes them, with the phases and the YAML
loading, into one environment's `Params`; the Cloud Function builds the sections it needs from
its environment variables (platform/cloud_function/config.py). Nothing here imports the layers
above it (warehouse, platform, run, cli).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from runbook_lib import clock, paths
from runbook_lib.errors import ParamsError

# BigQuery project ids: 6-30 chars, lowercase letters, digits and hyphens, starting with a letter.
PROJECT_RE = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
# Dataset and table names: letters, digits, underscores; tables may not start with a digit here.
NAME_RE = r"[A-Za-z_][A-Za-z0-9_]{0,1023}"
# The dataset of each key the platform's tables are declared under (platform/schema.py).
DEFAULT_DATASETS = {
    "analytics": "nba_analytics",
    "precompute": "nba_precompute",
    "orchestration": "nba_orchestration",
    "reference": "nba_reference",
}


def parse_date(value):
    """Return a YYYY-MM-DD string as a date (a before-validator); anything else unchanged."""
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as e:
            raise ValueError(f"{value!r} is not a date in YYYY-MM-DD form") from e
    return value


class Section(BaseModel):
    """A section: unknown keys are errors, values are not coerced, and it never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Dated(Section):
    """A config with an optional fixed `today` (YYYY-MM-DD); without one, today is the UTC date."""

    today: dt.date | None = None

    _check_today = field_validator("today", mode="before")(parse_date)

    def effective_today(self) -> dt.date:
        """Return the fixed `today`, or the current UTC date when none is set."""
        return self.today or clock.now().date()


# A BigQuery-API server on this machine: only loopback, so anonymous credentials never leave it.
ENDPOINT_RE = r"http://(127\.0\.0\.1|localhost):[0-9]{1,5}"


class BigQueryConfig(Section):
    """How the BigQuery backend reaches BigQuery: Google's API, or a server at `endpoint`.

    With an endpoint (a BigQuery-API server on 127.0.0.1, bqemulator: `--env emulator`) the
    client uses anonymous credentials; without one, Application Default Credentials. Anonymous
    credentials exist only with an endpoint.
    """

    endpoint: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _loopback(cls, v):
        if v is not None and not re.fullmatch(ENDPOINT_RE, v.rstrip("/")):
            raise ValueError(
                f"{v!r} is not a BigQuery-API server on this machine (must match {ENDPOINT_RE}); "
                "Google's BigQuery needs no endpoint"
            )
        return v.rstrip("/") if v else v


class WarehouseConfig(Section):
    """Which warehouse: the backend, its project and datasets, where DuckDB keeps its file.

    On the emulator `warehouse_dir` is where the BigQuery-API server keeps its data file.
    """

    backend: Literal["duckdb", "bigquery"]
    project: str
    location: str = "US"
    warehouse_dir: str = "outputs/local/warehouse"
    datasets: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_DATASETS))
    maximum_bytes_billed: int | None = Field(None, gt=0)
    bigquery: BigQueryConfig = BigQueryConfig()

    @field_validator("project")
    @classmethod
    def _project_id(cls, v):
        if not re.fullmatch(PROJECT_RE, v):
            raise ValueError(f"{v!r} is not a plain project id (must match {PROJECT_RE})")
        return v

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, v):
        missing = sorted(set(DEFAULT_DATASETS) - set(v))
        unknown = sorted(set(v) - set(DEFAULT_DATASETS))
        if missing or unknown:
            raise ValueError(
                f"needs exactly the keys {sorted(DEFAULT_DATASETS)}; "
                f"missing {missing}, unknown {unknown}"
            )
        for key, name in v.items():
            if not re.fullmatch(NAME_RE, name):
                raise ValueError(
                    f"{key}: {name!r} is not a plain dataset name (must match {NAME_RE})"
                )
        return v

    @field_validator("bigquery")
    @classmethod
    def _endpoint_needs_bigquery(cls, v, info: ValidationInfo):
        if v.endpoint and info.data.get("backend") == "duckdb":
            raise ValueError(
                "endpoint: the duckdb backend has no endpoint; remove bigquery.endpoint"
            )
        return v

    @property
    def is_local(self) -> bool:
        """Return whether the warehouse lives on this machine: the DuckDB file, or a BigQuery-API
        server on 127.0.0.1 (the emulator). Nobody else's data: auto-confirm and OS-user sign-offs
        are allowed, the function is served here instead of deployed."""
        return self.backend == "duckdb" or self.bigquery.endpoint is not None

    @property
    def engine(self) -> str:
        """Return what answers the SQL: "duckdb", "bigquery" (Google's) or "emulator"."""
        if self.backend == "bigquery" and self.bigquery.endpoint:
            return "emulator"
        return self.backend

    @property
    def warehouse_path(self) -> Path:
        """Return the absolute warehouse directory."""
        return paths.resolve(self.warehouse_dir)


class BackfillConfig(Section):
    """Thresholds and limits of `runbook backfill`."""

    # Fraction of PGS players UPCG must hold before the backfill trusts it (0.9 keeps 90%).
    fallback_threshold: float = Field(0.9, gt=0, le=1)
    fail_below_pct: float = Field(90.0, ge=0, le=100)
    # validate_default: a fail band raised above the default warn band must still be caught.
    warn_below_pct: float = Field(95.0, ge=0, le=100, validate_default=True)
    bootstrap_days: int = Field(14, ge=0)
    max_range_days: int = Field(1500, gt=0)
    workers: int = Field(2, ge=1, le=64)
    checkpoint_dir: str = "outputs/local/checkpoints"

    @field_validator("warn_below_pct")
    @classmethod
    def _warn_band_above_fail_band(cls, v, info: ValidationInfo):
        fail = info.data.get("fail_below_pct")  # absent when it failed its own check
        if fail is not None and fail > v:
            raise ValueError(
                f"fail_below_pct ({fail}) is above warn_below_pct ({v}): the fail band must "
                "sit at or below the warning band"
            )
        return v


class CleanupConfig(Section):
    """Limits of `runbook cleanup` and of the daily Cloud Function."""

    ttl_days: int = Field(7, ge=1)
    max_delete_fraction: float = Field(0.9, gt=0, le=1)
    dry_run: bool = False
    confirm: str | None = None
    # Backups older than this are dropped by the daily function after a successful run.
    backup_retention_days: int = Field(30, ge=1)


class AlertsConfig(Section):
    """Where alerts go and when they fire."""

    webhook_url: str | None = None
    # An explicit "no channel": outside local, either a webhook or this (phase 05 then reports
    # the channel NOT CONFIGURED instead of failing).
    no_channel: bool = False
    coverage_alert_pct: float = 90.0
    large_deletion_rows: int = 10_000


class CloudFunctionConfig(Section):
    """The daily cleanup function's deployment: its name, topic, schedule and runtime."""

    name: str = "upcoming-tables-cleanup"
    topic: str = "upcoming-tables-cleanup-trigger"
    scheduler_job: str = "upcoming-tables-cleanup-schedule"
    schedule: str = "0 4 * * *"
    time_zone: str = "America/New_York"
    region: str = "us-east1"
    runtime: str = "python311"
    entry_point: str = "cleanup_upcoming_tables"
    service_account: str = "nba-orchestration@nba-props-platform.iam.gserviceaccount.com"
    timeout: str = "540s"
    memory: str = "512MB"


def readable_reason(value: str | None) -> str | None:
    """Return a recorded reason unchanged; a blank one is an error (a validator)."""
    if value is not None and not value.strip():
        raise ValueError("is empty: give a reason a reviewer can read, or leave it null")
    return value


class PromotionConfig(Section):
    """Which environment gates this one: a run here needs a VERIFIED run there of the same commit.

    prod names staging: a prod run refuses to start unless a staging run of the commit it
    deploys verifies and every phase of it SUCCEEDED. `skip_staging_reason` is the only way
    past, recorded in the manifest and the deployment log. No `gated_by` (local): no gate.
    """

    gated_by: str | None = None
    skip_staging_reason: str | None = None

    _reason = field_validator("skip_staging_reason")(lambda v: readable_reason(v))


class ContactsConfig(Section):
    """Whom to call when a phase fails or an alert fires: on-call first, then the escalation."""

    on_call: list[str] = Field(default_factory=list)
    escalation: str | None = None

    def named(self) -> str:
        """Return the contacts in one line; what params leave out is the OS user (a local run)."""
        import getpass

        user = f"{getpass.getuser()} (the OS user; params name no contacts)"
        return f"on-call {', '.join(self.on_call) or user}; escalate to {self.escalation or user}"


# A span of local wall-clock time, "HH:MM-HH:MM" (24:00 ends a day; a span may cross midnight).
SPAN_RE = r"([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class DeploymentWindowConfig(Section):
    """When a run may start: allowed days and hours, minus blackout spans, in one time zone.

    `blackouts` maps a span to why it is closed (the nightly backfill, the 04:00 cleanup);
    `override_reason` opens the window anyway and is recorded. Phase 00 checks it.
    """

    time_zone: str = "America/New_York"
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: list(WEEKDAYS)
    )
    hours: str = "00:00-24:00"
    blackouts: dict[str, str] = Field(default_factory=dict)
    override_reason: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, v):
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. America/New_York)") from None
        return v

    @field_validator("hours")
    @classmethod
    def _hours_span(cls, v):
        if not re.fullmatch(SPAN_RE, v):
            raise ValueError(f"{v!r} is not a span HH:MM-HH:MM (e.g. 09:00-17:00)")
        return v

    @field_validator("blackouts")
    @classmethod
    def _blackout_spans(cls, v):
        bad = [span for span in v if not re.fullmatch(SPAN_RE, span)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a span HH:MM-HH:MM (e.g. '03:45-04:30')")
        return v

    _reason = field_validator("override_reason")(lambda v: readable_reason(v))


class MonitorFunctionConfig(CloudFunctionConfig):
    """The daily monitor's deployment: a second function and scheduler job, after the nightly
    backfill (which runs 01:00-03:30 New York time) and the 04:00 cleanup."""

    name: str = "backfill-coverage-monitor"
    topic: str = "backfill-coverage-monitor-trigger"
    scheduler_job: str = "backfill-coverage-monitor-schedule"
    schedule: str = "0 6 * * *"
    entry_point: str = "monitor_backfill_coverage"
    timeout: str = "300s"


def config_error(e: ValidationError, source: str, order: tuple[str, ...] = ()) -> ParamsError:
    """Return the ParamsError for the first broken rule, naming source and key.

    First by `order` (top-level keys; the others after them), then in pydantic's order.
    """
    rank = {key: i for i, key in enumerate(order)}
    err = min(
        e.errors(), key=lambda err: rank.get(str(err["loc"][0]) if err["loc"] else "", len(rank))
    )
    key = ".".join(str(p) for p in err["loc"]) or "<top>"
    if err["type"] == "extra_forbidden":
        return ParamsError(
            source,
            key,
            "unknown key",
            "remove it or correct its spelling; the keys are listed in params/local.yaml",
        )
    if err["type"] == "missing":
        return ParamsError(source, key, "missing required key", f"add {key} to {source}")
    return ParamsError(source, key, *_broken_rule(err, key, source))


def _broken_rule(err: dict, key: str, source: str) -> tuple[str, str]:
    """Return (problem, fix) stating the rule a value broke, in pydantic's or our own words."""
    value = err.get("input")
    # Scalars only: a whole mapping (datasets) would bury the message; our rules name the entry.
    got = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    if err["type"] == "value_error":  # our validators: the message names the value and the rule
        problem = err["msg"].removeprefix("Value error, ")
        cause = getattr((err.get("ctx") or {}).get("error"), "__cause__", None)
        if cause is not None:  # e.g. "day is out of range for month" behind a bad date
            problem += f": {cause}"
        return problem, f"correct {key} in {source}"
    rule = err["msg"].removeprefix("Input should be ")
    if rule == err["msg"]:
        return f"{err['msg']}{got}", f"correct {key} in {source}"
    return f"must be {rule}{got}", f"set {key} to a value that is {rule}"
