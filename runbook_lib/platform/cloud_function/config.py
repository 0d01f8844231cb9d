"""The Cloud Function's own configuration: the sections it needs, carried by environment variables.

One table, `ENV_VARS`, maps each variable to its key; it is read in both directions: `from_env`
builds the function's config from its environment when it runs, `to_env` writes the variables
for a config (what the deployment plan, phase 03 and `runbook function serve` set). The values
are validated by the sections' own models (runbook_lib/config.py), so each rule (ttl_days >= 1,
a plain project id, ...) has one definition; a bad value is an error naming its variable.

Environment variables:
    GCP_PROJECT_ID        project of the warehouse (required; GOOGLE_CLOUD_PROJECT as fallback)
    DATASET               analytics dataset holding UPCG and UTCG (default nba_analytics)
    AUDIT_DATASET         orchestration dataset of cleanup_operations (default nba_orchestration)
    BIGQUERY_LOCATION     location of the datasets, where its jobs run (default US)
    MAXIMUM_BYTES_BILLED  byte cap of each of its queries (optional; a query over it fails)
    TTL_DAYS              days of upcoming rows to keep (default 7, >= 1)
    MAX_DELETE_FRACTION   cap on the share of a table one run may delete (default 0.9)
    BACKUP_RETENTION_DAYS days a cleanup's backups are kept (default 30)
    ALERT_THRESHOLD_ROWS  alert when more rows than this are deleted (default 10000)
    ALERT_WEBHOOK_URL     where alerts are POSTed as JSON (optional)
    WAREHOUSE_BACKEND     bigquery (default) or duckdb for local runs
    WAREHOUSE_DIR         the DuckDB warehouse folder (duckdb only)
    BIGQUERY_ENDPOINT     a BigQuery-API server on 127.0.0.1 (the emulator only; never deployed)
    CLEANUP_TODAY         fixed "today" (YYYY-MM-DD) for local runs; default the UTC date
    RUNBOOK_ENV           the runbook environment deployed from (the monitor's repair lines)
    ALERT_CONTACTS        whom every alert names: on-call and escalation (params contacts)
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

from pydantic import ValidationError

from runbook_lib.config import (
    DEFAULT_DATASETS,
    AlertsConfig,
    CleanupConfig,
    Dated,
    WarehouseConfig,
    config_error,
)
from runbook_lib.errors import ParamsError
from runbook_lib.platform.schema import Tables

SOURCE = "environment variables"
# The environment name the function's cleanup plans are bound to (its confirmation tokens).
ENV_NAME = "function"
PROJECT_FALLBACK = "GOOGLE_CLOUD_PROJECT"
# Variable -> (dotted key in FunctionConfig, written by to_env only for the local warehouse).
ENV_VARS: dict[str, tuple[str, bool]] = {
    "GCP_PROJECT_ID": ("warehouse.project", False),
    "DATASET": ("warehouse.datasets.analytics", False),
    "AUDIT_DATASET": ("warehouse.datasets.orchestration", False),
    "BIGQUERY_LOCATION": ("warehouse.location", False),
    "MAXIMUM_BYTES_BILLED": ("warehouse.maximum_bytes_billed", False),
    "TTL_DAYS": ("cleanup.ttl_days", False),
    "MAX_DELETE_FRACTION": ("cleanup.max_delete_fraction", False),
    "ALERT_THRESHOLD_ROWS": ("alerts.large_deletion_rows", False),
    "BACKUP_RETENTION_DAYS": ("cleanup.backup_retention_days", False),
    "ALERT_WEBHOOK_URL": ("alerts.webhook_url", False),
    "WAREHOUSE_BACKEND": ("warehouse.backend", True),
    "WAREHOUSE_DIR": ("warehouse.warehouse_dir", True),
    "BIGQUERY_ENDPOINT": ("warehouse.bigquery.endpoint", True),
    "CLEANUP_TODAY": ("today", True),
    "RUNBOOK_ENV": ("runbook_env", False),
    "ALERT_CONTACTS": ("contacts", False),
}


class FunctionConfig(Dated):
    """What the daily cleanup needs: its warehouse, the cleanup's limits, alerts, a fixed today."""

    warehouse: WarehouseConfig
    cleanup: CleanupConfig = CleanupConfig()
    alerts: AlertsConfig = AlertsConfig()
    # The runbook environment it was deployed from: the monitor's alerts name it in the
    # `runbook backfill --env ...` line that repairs a problem.
    runbook_env: str | None = None
    # Whom its alerts name (ContactsConfig.named() of the environment it was deployed from).
    contacts: str | None = None

    @property
    def env(self) -> str:
        """Return the environment name the function's plans are bound to."""
        return ENV_NAME

    @property
    def tables(self) -> Tables:
        """Return the declared tables in the function's project and datasets."""
        return Tables(self.warehouse.project, self.warehouse.datasets)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FunctionConfig:
        """Read and validate the configuration; a missing or bad value names its variable."""
        env = os.environ if environ is None else environ
        values = {name: env[name] for name in ENV_VARS if env.get(name)}
        values.setdefault("GCP_PROJECT_ID", env.get(PROJECT_FALLBACK) or "")
        if not values["GCP_PROJECT_ID"]:
            raise ParamsError(
                SOURCE,
                "GCP_PROJECT_ID",
                "not set",
                "set GCP_PROJECT_ID=<project> in the function's environment "
                "(`runbook function plan --env ENV --apply` sets it)",
            )
        data: dict = {"warehouse": {"backend": "bigquery", "datasets": dict(DEFAULT_DATASETS)}}
        for name, value in values.items():
            _set(data, ENV_VARS[name][0], value)
        try:
            # Lax: every value arrives as a string, and the models parse "7" as 7.
            return cls.model_validate(data, strict=False)
        except ValidationError as e:
            raise _named_by_variable(config_error(e, SOURCE)) from None

    def to_env(self) -> dict[str, str]:
        """Return the environment variables that carry this config (`from_env` reads it back)."""
        out = {}
        for name, (key, local_only) in ENV_VARS.items():
            value = _get(self, key)
            if value not in (None, "") and (self.warehouse.is_local or not local_only):
                out[name] = value.isoformat() if isinstance(value, dt.date) else str(value)
        return out


def _set(data: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def _get(config: FunctionConfig, key: str):
    value = config
    for part in key.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def _named_by_variable(error: ParamsError) -> ParamsError:
    """Return the error with its key (cleanup.ttl_days) replaced by the variable (TTL_DAYS)."""
    names = {key: name for name, (key, _) in ENV_VARS.items()}
    name = names.get(error.key)
    if name is None:
        return error
    return ParamsError(error.source, name, error.problem, error.fix.replace(error.key, name))
