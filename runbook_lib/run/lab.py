"""The JupyterLab server of `runbook lab`: 127.0.0.1, a token, the URL it really serves.

The server runs as a child in its own session, so Ctrl-C in the terminal reaches only
`runbook lab`, which stops the server with SIGTERM (jupyter_server then shuts its kernels
down) instead of JupyterLab asking "Shutdown this Jupyter server (y/[n])?". The URL is read
from the server's own runtime file (jpserver-<pid>.json), never assumed: with a busy port
JupyterLab would otherwise serve on the next one while we printed the first. Its per-session
settings save notebooks every few seconds (sealing waits for the save) and fetch no news.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from runbook_lib import paths
from runbook_lib.errors import RunbookError
from runbook_lib.run.engine import kernel_name

AUTOSAVE_SECONDS = 2
START_TIMEOUT = 90
# Defaults for this server only (a user's own settings still win): save often, no news.
SETTINGS = {
    "@jupyterlab/docmanager-extension:plugin": {"autosaveInterval": AUTOSAVE_SECONDS},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


class LabStartError(RunbookError):
    """JupyterLab did not start (busy port, missing package)."""

    def __init__(self, port: int, detail: str):
        self.port = port
        super().__init__(
            f"JupyterLab did not start on 127.0.0.1:{port}: {detail} (to fix this, pass a free "
            f"--port, or leave --port out to pick one)"
        )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        "--ServerApp.port_retries=0",  # a busy port is an error, never a silent other port
        f"--IdentityProvider.token={token}",
        "--no-browser",
        f"--MultiKernelManager.default_kernel_name={kernel_name()}",
    ]
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")  # JupyterLab refuses to run as root without it
    return cmd, token


@dataclass
class LabServer:
    """A running JupyterLab: its process, the base URL it serves and its token."""

    proc: subprocess.Popen
    base_url: str
    token: str
    state_dir: Path

    def url(self, path: str = "") -> str:
        """Return the URL of `path` (a notebook under the served folder), token included."""
        where = f"lab/tree/{path}" if path else "lab"
        return f"{self.base_url}{where}?token={self.token}"

    def alive(self) -> bool:
        """Return whether the server process still runs."""
        return self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """Stop the server (it shuts its kernels down first); kill it if it hangs."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.state_dir, ignore_errors=True)


def start(root: Path, env: dict[str, str], port: int | None = None) -> LabServer:
    """Start JupyterLab on `root` with `env` for its kernels; return once it serves."""
    port = port or free_port()
    state = Path(tempfile.mkdtemp(prefix="rbk-lab-"))
    cmd, token = lab_command(port, root)
    cmd += [
        f"--LabApp.app_settings_dir={_settings_dir(state)}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",  # no tabs of another run reopen
    ]
    log = (state / "server.log").open("w")
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        cmd,
        env={**os.environ, **env, "JUPYTER_RUNTIME_DIR": str(state / "runtime")},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    server = LabServer(proc, "", token, state)
    try:
        info = _wait_for_runtime_file(proc, state, port)
    except BaseException:  # Ctrl-C while it starts included: leave no server behind
        server.stop()
        raise
    server.base_url, server.token = info["url"], info.get("token") or token
    return server


def _settings_dir(state: Path) -> Path:
    """Copy the installed app settings and add this session's defaults as overrides.d."""
    installed = Path(sys.prefix) / "share/jupyter/lab/settings"
    folder = state / "settings"
    if installed.is_dir():
        shutil.copytree(installed, folder)
    (folder / "overrides.d").mkdir(parents=True, exist_ok=True)
    (folder / "overrides.d/runbook.json").write_text(json.dumps(SETTINGS))
    return folder


def _wait_for_runtime_file(proc: subprocess.Popen, state: Path, port: int) -> dict:
    """Return the server's own record of where it listens (written once it serves)."""
    path = state / "runtime" / f"jpserver-{proc.pid}.json"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if path.exists():
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:
                pass  # being written
        if proc.poll() is not None:
            tail = (state / "server.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise LabStartError(port, " / ".join(tail) or f"exit {proc.returncode}")
        time.sleep(0.2)
    raise LabStartError(port, f"no answer after {START_TIMEOUT} s")
