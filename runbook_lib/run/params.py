"""Params files become frozen, typed objects; anything unexpected is an error naming file and key.

YAML is read with a loader that rejects duplicate keys and keeps dates as strings until the
model parses them (bigquery-etl's UniqueKeyLoader, papermill's NoDatesSafeLoader).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from runbook_lib import paths
from runbook_lib.errors import ParamsError, UnknownEnvironmentError
from runbook_lib.platform.schema import DEFAULT_DATASETS, Tables
from runbook_lib.warehouse.ids import NAME_RE, PROJECT_RE

ENV_RE = r"[a-z][a-z0-9_-]{0,30}"


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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _parse_date(value):
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as e:
            raise ValueError(f"{value!r} is not a date in YYYY-MM-DD form") from e
    return value


class BackfillParams(_Model):
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


class CleanupParams(_Model):
    """Limits of `runbook cleanup` and of the daily Cloud Function."""

    ttl_days: int = Field(7, ge=1)
    max_delete_fraction: float = Field(0.9, gt=0, le=1)
    dry_run: bool = False
    confirm: str | None = None
    # Backups older than this are dropped by the daily function after a successful run.
    backup_retention_days: int = Field(30, ge=1)


class AlertParams(_Model):
    """Where alerts go and when they fire."""

    webhook_url: str | None = None
    coverage_alert_pct: float = 90.0
    large_deletion_rows: int = 10_000


class CloudFunctionParams(_Model):
    """The daily cleanup function, its topic and its schedule."""

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


class Params(_Model):
    """One environment's parameters, validated."""

    env: str
    backend: Literal["duckdb", "bigquery"]
    project: str
    location: str = "US"
    warehouse_dir: str = "outputs/local/warehouse"
    today: dt.date | None = None
    datasets: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_DATASETS))
    maximum_bytes_billed: int | None = Field(None, gt=0)
    backfill: BackfillParams = BackfillParams()
    cleanup: CleanupParams = CleanupParams()
    alerts: AlertParams = AlertParams()
    cloud_function: CloudFunctionParams = CloudFunctionParams()
    phases: dict[str, dict] = Field(default_factory=dict)
    source: str = Field("<memory>", exclude=True)

    _check_today = field_validator("today", mode="before")(_parse_date)

    @field_validator("env")
    @classmethod
    def _env_name(cls, v):
        if not re.fullmatch(ENV_RE, v):
            raise ValueError(f"must match {ENV_RE}")
        return v

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
            raise ValueError(f"needs exactly the keys {sorted(DEFAULT_DATASETS)}; "
                             f"missing {missing}, unknown {unknown}")
        for key, name in v.items():
            if not re.fullmatch(NAME_RE, name):
                raise ValueError(f"{key}: {name!r} is not a plain dataset name (must match {NAME_RE})")
        return v

    @property
    def tables(self) -> Tables:
        """Return the declared tables resolved to this environment's project and datasets."""
        return Tables(self.project, self.datasets)

    @property
    def is_local(self) -> bool:
        """Return whether this environment is the embedded warehouse."""
        return self.backend == "duckdb"

    def effective_today(self) -> dt.date:
        """Return the params' `today`, or the current UTC date when none is set."""
        return self.today or dt.datetime.now(dt.UTC).date()

    @property
    def warehouse_path(self) -> Path:
        """Return the absolute warehouse directory."""
        return paths.resolve(self.warehouse_dir)


def known_envs(params_dir: Path | None = None) -> list[str]:
    """Return the environments that have a params file."""
    return sorted(p.stem for p in (params_dir or paths.PARAMS_DIR).glob("*.yaml"))


def _friendly(e: ValidationError, source: str) -> ParamsError:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "<top>"
    if err["type"] == "extra_forbidden":
        return ParamsError(source, key, "unknown key", "remove it or correct its spelling; "
                           "the keys are listed in params/local.yaml")
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
        return Params.model_validate({**data, "source": source})
    except ValidationError as e:
        raise _friendly(e, source) from None


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
                          f"set env: {env}")
    return params


def _shown_path(path: Path) -> str:
    """Return how errors name a params file: relative to the project when inside it."""
    full = path.resolve()
    try:
        return str(full.relative_to(paths.ROOT))
    except ValueError:
        return str(full)
