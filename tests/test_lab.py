"""`runbook lab`: a real JupyterLab on 127.0.0.1, token required, the project's kernel offered."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

from runbook_lib.run.engine import kernel_name
from runbook_lib.run.lab import lab_command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback only
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_lab_should_serve_the_notebooks_on_loopback_with_a_token(tmp_path):
    port = _free_port()
    cmd, token = lab_command(port)
    assert "--ServerApp.ip=127.0.0.1" in cmd
    env_dir = tmp_path / "jupyter"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={"JUPYTER_RUNTIME_DIR": str(env_dir), "HOME": str(tmp_path),
                                 "PATH": "/usr/bin:/bin"})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != 200:
            time.sleep(0.5)
            try:
                status, _ = _get(f"{base}/api/status?token={token}")
            except OSError:
                status = None
        assert status == 200
        assert _get(f"{base}/api/contents")[0] == 403  # no token, no access
        _, body = _get(f"{base}/api/contents?token={token}")
        names = {item["name"] for item in json.loads(body)["content"]}
        assert "04_integration_test.ipynb" in names
        _, specs = _get(f"{base}/api/kernelspecs?token={token}")
        assert json.loads(specs)["default"] == kernel_name()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
