"""Where the project's files live: params, notebooks, outputs (relative paths resolve here)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The checkout the code runs from: what phase 01 inspects (git state, tests, compile).
SOURCE_ROOT = PACKAGE_DIR.parent
# Where params, notebooks and outputs are looked up; tests point it at a temporary folder.
ROOT = Path(os.environ.get("RUNBOOK_ROOT", PACKAGE_DIR.parent)).resolve()
PARAMS_DIR = Path(os.environ.get("RUNBOOK_PARAMS_DIR", ROOT / "params")).resolve()
NOTEBOOKS_DIR = ROOT / "notebooks"
OUTPUTS_DIR = ROOT / "outputs"


def resolve(path: str | Path) -> Path:
    """Return `path` made absolute against the project root."""
    p = Path(path)
    return p if p.is_absolute() else (ROOT / p).resolve()
