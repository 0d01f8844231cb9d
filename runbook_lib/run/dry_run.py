"""Whether a phase runs dry: the one place the `dry_run` parameter meets the params' default."""

from __future__ import annotations

from runbook_lib.run.params import Params


def resolve_dry_run(params: Params, dry_run: bool | None) -> bool:
    """Return the phase's dry-run setting: the parameter if given, else the params default."""
    return params.cleanup.dry_run if dry_run is None else bool(dry_run)
