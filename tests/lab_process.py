"""`runbook lab` as a real process on a project root of its own (tracked notebooks, seeded warehouse)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib import paths
from tests.conftest import TODAY

RUNBOOK = str(Path(sys.executable).parent / "runbook")
# Debian's chromium, driven by Playwright (its own browser download cannot work offline).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def lab_root(tmp_path, seeded_file, monkeypatch):
    """A project root with the tracked notebooks and a seeded local warehouse of its own."""
    (tmp_path / "notebooks").symlink_to(paths.NOTEBOOKS_DIR)
    warehouse = tmp_path / "outputs/local/warehouse"
    warehouse.mkdir(parents=True)
    shutil.copy(seeded_file, warehouse / seeded_file.name)
    monkeypatch.setenv("RUNBOOK_ROOT", str(tmp_path))
    monkeypatch.setenv("RUNBOOK_PARAMS_DIR", str(paths.PARAMS_DIR))
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path / "jupyter-settings"))
    return tmp_path


def start_lab(root: Path, *args: str) -> tuple[subprocess.Popen, str, Path]:
    """Start `runbook lab --env local ARGS`; return the process, the URL it printed, the run dir."""
    proc = subprocess.Popen(
        [RUNBOOK, "lab", "--env", "local", "--set", f"today={TODAY}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=root,
    )
    run_dir = url = None
    printed = []
    for line in proc.stdout:
        printed.append(line)
        if m := re.match(r"run \S+: working copies in (\S+)", line):
            run_dir = Path(m.group(1)).parent
        if line.startswith("JupyterLab: "):
            url = line.split(" ", 1)[1].strip()
            break
    assert url and run_dir, f"runbook lab printed no URL (exit {proc.wait(30)}): {''.join(printed)}"
    return proc, url, run_dir
