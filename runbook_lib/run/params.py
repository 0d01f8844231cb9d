"""Params files become frozen, typed objects; anything unexpected is an error naming file and key.

`Params` composes the sections of runbook_lib/config.py (the warehouse's keys at the top level,
then backfill, cleanup, alerts, cloud_function) with the environment's name, its `today` and
the phases' own parameters.

YAML is read with a loader that rejects duplicate keys and keeps dates as strings until the
model parses them (bigquery-etl's UniqueKeyLoader, papermill's NoDatesSafeLoader).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator

from runbook_lib import paths
from runbook_lib.config import (
    AlertsConfig,
    BackfillConfig,
    CleanupConfig,
    CloudFunctionConfig,
    ContactsConfig,
    Dated,
    DeploymentWindowConfig,
    MonitorFunctionConfig,
    PromotionConfig,
    WarehouseConfig,
    config_error,
)
from runbook_lib.errors import ParamsError, UnknownEnvironmentError
from runbook_lib.platform.cloud_function.config import FunctionConfig
from runbook_lib.platform.schema import Tables

ENV_RE = r"[a-z][a-z0-9_-]{0,30}"
# Environments whose warehouse is Google's BigQuery, never a server on this machine.
CLOUD_ENVS = ("staging", "prod")
# Which broken rule a params file is told about first: its keys in the order of params/local.yaml.
KEY_ORDER = ("env", "backend", "project", "location", "warehouse_dir", "today", "datasets",
             "maximum_bytes_billed", "bigquery", "backfill", "cleanup", "alerts", "cloud_function", "monitor_function",
             "promotion", "deployment_window", "contacts", "phases")  # fmt: skip


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that refuses duplicate keys and leaves dates as strings."""

    source = "params"

    def check_unique(self, node: yaml.Node, path: tuple[str, ...] = (), seen=None) -> None:
        """Raise ParamsError at a key repeated in a mapping, named by its full dotted path."""
        # Checked on the composed nodes, before construction, where the path is still known.
        seen = set() if seen is None else seen
        if id(node) in seen:  # an alias: already checked, and may refer to itself
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.check_unique(item, (*path, str(i)), seen)
        if not isinstance(node, yaml.MappingNode):
            return
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key in lines:
                # Two `<<` are duplicate keys too: PyYAML would silently let one win.
                merge = key_node.tag == "tag:yaml.org,2002:merge"
                raise ParamsError(
                    self.source,
                    ".".join((*path, key)),
                    f"duplicate {'merge ' if merge else ''}key (first on line {lines[key]}, "
                    f"again on line {line})",
                    "merge several mappings with one key, `<<: [*first, *second]`"
                    if merge else "keep only one of the two entries",
                )  # fmt: skip
            lines.setdefault(key, line)
            self.check_unique(value_node, (*path, key), seen)


_UniqueKeyLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class Params(WarehouseConfig, Dated):
    """One environment's parameters, validated: its warehouse (the top-level keys), the sections
    of the platform's parts, and the phases' own parameters."""

    env: str
    backfill: BackfillConfig = BackfillConfig()
    cleanup: CleanupConfig = CleanupConfig()
    # validate_default: a params file with no alerts section still gets its channel checked.
    alerts: AlertsConfig = Field(AlertsConfig(), validate_default=True)
    cloud_function: CloudFunctionConfig = CloudFunctionConfig()
    monitor_function: MonitorFunctionConfig = MonitorFunctionConfig()
    promotion: PromotionConfig = PromotionConfig()
    deployment_window: DeploymentWindowConfig = DeploymentWindowConfig()
    contacts: ContactsConfig = ContactsConfig()
    phases: dict[str, dict] = Field(default_factory=dict)
    source: str = Field("<memory>", exclude=True)

    @field_validator("env")
    @classmethod
    def _env_name(cls, v):
        if not re.fullmatch(ENV_RE, v):
            raise ValueError(f"must match {ENV_RE}")
        return v

    @field_validator("promotion")
    @classmethod
    def _not_gated_by_itself(cls, v, info):
        if v.gated_by is not None and v.gated_by == info.data.get("env"):
            raise ValueError(f"gated_by names this environment ({v.gated_by}) itself")
        return v

    @field_validator("alerts")
    @classmethod
    def _alert_channel(cls, v, info: ValidationInfo):
        # On BigQuery a forgotten webhook is silence in production: the incident's six days. A
        # BigQuery-API server on this machine (an endpoint) gets the local receiver instead.
        local_server = getattr(info.data.get("bigquery"), "endpoint", None)
        if info.data.get("backend") == "bigquery" and not local_server and not (
            v.webhook_url or v.no_channel
        ):
            raise ValueError(
                "needs an alert channel on BigQuery: set alerts.webhook_url to a Slack incoming "
                "webhook, or alerts.no_channel: true to run without one (phase 05 then reports "
                "the channel NOT CONFIGURED)"
            )
        return v

    @property
    def warehouse(self) -> WarehouseConfig:
        """Return the warehouse section alone (what `warehouse.connect` takes)."""
        return WarehouseConfig(**{k: getattr(self, k) for k in WarehouseConfig.model_fields})

    @property
    def tables(self) -> Tables:
        """Return the declared tables resolved to this environment's project and datasets."""
        return Tables(self.project, self.datasets)

    def function_config(self, webhook_url: str | None = None) -> FunctionConfig:
        """Return the config the Cloud Function runs with here (its env vars: `.to_env()`)."""
        warehouse = self.warehouse.model_copy(update={"warehouse_dir": str(self.warehouse_path)})
        webhook = webhook_url or self.alerts.webhook_url
        return FunctionConfig(
            warehouse=warehouse,
            cleanup=self.cleanup,
            alerts=self.alerts.model_copy(update={"webhook_url": webhook}),
            today=self.today,
            runbook_env=self.env,
            contacts=self.contacts.named(),
        )


def known_envs(params_dir: Path | None = None) -> list[str]:
    """Return the environments that have a params file."""
    return sorted(p.stem for p in (params_dir or paths.PARAMS_DIR).glob("*.yaml"))


def parse_params(text: str, source: str = "<string>", overrides: dict | None = None) -> Params:
    """Parse params YAML text (plus overrides) into a validated Params."""
    loader = _UniqueKeyLoader(text)
    loader.source = source
    try:
        node = loader.get_single_node()
        if node is not None:
            loader.check_unique(node)
        data = (loader.construct_document(node) if node is not None else None) or {}
    except yaml.YAMLError as e:
        raise ParamsError(source, "<yaml>", f"not valid YAML: {e}", "fix the syntax") from e
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ParamsError(source, "<top>", "must be a mapping of keys", "write key: value lines")
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    try:
        params = Params.model_validate({**data, "source": source})
    except ValidationError as e:
        raise config_error(e, source, KEY_ORDER) from None
    if params.env in CLOUD_ENVS and params.bigquery.endpoint:
        raise ParamsError(
            source, "bigquery.endpoint",
            f"is set on {params.env}, whose warehouse is Google's BigQuery: its run would go to "
            f"the server at {params.bigquery.endpoint} with anonymous credentials instead",
            "remove bigquery.endpoint; use --env emulator for a BigQuery-API server on this machine",
        )  # fmt: skip
    return params


KEY_PART_RE = r"[A-Za-z0-9_][A-Za-z0-9_-]*"


def _set_dotted(data: dict, key: str, value) -> None:
    """Set `a.b.c` in nested mappings; raise ParamsError for a bad key or a path through a value."""
    parts = str(key).split(".")
    if not all(re.fullmatch(KEY_PART_RE, p) for p in parts):
        raise ParamsError(
            "overrides", str(key),
            f"is not a params key: each dot-separated part must match {KEY_PART_RE}",
            "name a key as it is written in the params file, e.g. cleanup.dry_run",
        )  # fmt: skip
    node = data
    for i, p in enumerate(parts[:-1]):
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            where = ".".join(parts[: i + 1])
            shown = yaml.safe_dump(node, default_flow_style=True).splitlines()[0]
            raise ParamsError(
                "overrides", str(key),
                f"{where} is a single value ({shown}), not a "
                f"group of keys, so it has no key {parts[i + 1]!r}",
                f"set {where} itself (e.g. {where}=...), or correct the key's spelling",
            )  # fmt: skip
    node[parts[-1]] = value


def load_params(env: str, overrides: dict | None = None, params_dir: Path | None = None) -> Params:
    """Load `params/<env>.yaml`; an unknown environment is an error listing the known ones."""
    folder = params_dir or paths.PARAMS_DIR
    if not isinstance(env, str) or not re.fullmatch(ENV_RE, env):
        raise UnknownEnvironmentError(str(env), known_envs(folder))
    path = folder / f"{env}.yaml"
    if not path.exists():
        raise UnknownEnvironmentError(env, known_envs(folder))
    shown = _shown_path(path)
    params = parse_params(path.read_text(), shown, overrides)
    if params.env != env:
        raise ParamsError(shown, "env", f"says {params.env!r} but the file is for {env!r}",
                          f"set env: {env}")  # fmt: skip
    return params


def _shown_path(path: Path) -> str:
    """Return how errors name a params file: relative to the project when inside it."""
    full = path.resolve()
    try:
        return str(full.relative_to(paths.ROOT))
    except ValueError:
        return str(full)
