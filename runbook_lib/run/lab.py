"""`runbook lab`: JupyterLab on the phase notebooks, bound to 127.0.0.1 with a token."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from runbook_lib import paths
from runbook_lib.run.engine import kernel_name


def lab_command(
    port: int = 8888, notebooks_dir: Path | None = None, token: str | None = None
) -> tuple[list[str], str]:
    """Return the JupyterLab command line and the token it will require."""
    token = token or secrets.token_urlsafe(24)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--notebook-dir={notebooks_dir or paths.NOTEBOOKS_DIR}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        "--no-browser",
        f"--MultiKernelManager.default_kernel_name={kernel_name()}",
    ]
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")  # JupyterLab refuses to run as root without it
    return cmd, token
