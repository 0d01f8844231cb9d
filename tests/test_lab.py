"""`runbook lab`: interactive runs served by a real JupyterLab, sealed into the run's chain.

The browser journey is tests/test_lab_browser.py; here the server, the lock, signals and
sealing are driven without a browser: real `runbook lab` processes, a real jupyter server,
kernels started through its REST API, and working copies executed by nbclient in a kernel
with the environment JupyterLab's kernels get.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from runbook_lib.errors import PhaseFailedError, WaitingForInput
from runbook_lib.run import interactive, manifest, runner
from runbook_lib.run.engine import kernel_name
from runbook_lib.run.interact import HEADLESS_ENV
from runbook_lib.run.lab import AUTOSAVE_SECONDS, lab_command
from tests import lab_process
from tests.lab_process import RUNBOOK, start_lab
from tests.phase_notebooks import write_phase

lab_root = lab_process.lab_root  # the fixture


def _get(url: str, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback only
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_lab_should_serve_the_printed_url_hold_the_lock_and_stop_clean_on_a_signal(lab_root, sig):
    """The URL printed is served; a headless run is refused meanwhile; a signal leaves nothing."""
    proc, url, run_dir = start_lab(lab_root, "--phases", "02")
    lock_file = lab_root / "outputs/local/warehouse/nba-props-platform.duckdb.lock"
    try:
        base, token = re.match(
            r"(http://127\.0\.0\.1:\d+/)lab/tree/02_data_cleanup\.ipynb\?token=(\S+)", url
        ).groups()
        assert _get(f"{base}api/status?token={token}")[0] == 200
        assert _get(f"{base}api/contents")[0] == 403  # no token, no access
        listing = json.loads(_get(f"{base}api/contents?token={token}")[1])
        assert {i["name"] for i in listing["content"]} == {
            "02_data_cleanup.ipynb"
        }  # not notebooks/
        specs = json.loads(_get(f"{base}api/kernelspecs?token={token}")[1])
        assert specs["default"] == kernel_name()
        docmanager = "lab/api/settings/@jupyterlab/docmanager-extension:plugin"
        saving = json.loads(_get(f"{base}{docmanager}?token={token}")[1])
        interval = saving["schema"]["properties"]["autosaveInterval"]["default"]  # our override
        assert interval == AUTOSAVE_SECONDS  # sealing waits for a save
        assert json.loads(lock_file.read_text())["run_id"] == run_dir.name
        headless = subprocess.run(
            [RUNBOOK, "run", "--env", "local", "--phases", "02"],
            capture_output=True,
            text=True,
            cwd=lab_root,
        )
        assert headless.returncode == 1 and f"run {run_dir.name}" in headless.stderr
        assert _get(f"{base}api/kernels?token={token}", "POST")[0] == 201
        (server,) = _children(proc.pid)
        kernels = _children(server)
        assert kernels
    finally:
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "lock is released" in out
    assert not lock_file.exists()
    assert not any(_alive(p) for p in [server, *kernels])
    assert len(list((lab_root / "outputs/local").glob("*/manifest.json"))) == 1


def test_lab_should_refuse_a_busy_port_and_leave_no_lock_nor_run(lab_root):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [RUNBOOK, "lab", "--env", "local", "--port", str(port)],
            capture_output=True,
            text=True,
            cwd=lab_root,
            timeout=120,
        )
    assert done.returncode == 1
    assert f"127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert not (lab_root / "outputs/local/warehouse/nba-props-platform.duckdb.lock").exists()
    assert not list((lab_root / "outputs/local").glob("*/manifest.json"))


def test_lab_command_binds_loopback_with_a_token_and_refuses_other_ports():
    cmd, token = lab_command(8890)
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port_retries=0" in cmd
    assert f"--IdentityProvider.token={token}" in cmd and len(token) >= 24


# -- sealing, without a browser: nbclient runs a working copy as JupyterLab's kernel would ----


def _lab_session(tmp_path, monkeypatch, cells: list[str]):
    nbdir = tmp_path / "notebooks"
    write_phase(nbdir, "00_first", cells)
    write_phase(nbdir, "01_second", ['phase.check("second", True)'])
    ctx, available, selected = interactive.new_session(
        "local", out_root=tmp_path / "out", notebooks_dir=nbdir
    )
    session = interactive.open_new(ctx, available, selected)
    for key, value in interactive.lab_kernel_env(ctx).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(HEADLESS_ENV, raising=False)
    return session


def _execute(copy: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(copy, as_version=4)
    try:
        NotebookClient(
            nb,
            kernel_name=kernel_name(),
            resources={"metadata": {"path": str(copy.parent)}},
        ).execute()
    finally:
        nbformat.write(nb, copy)  # what JupyterLab's save writes
    return nb


def test_a_finished_working_copy_should_seal_like_a_headless_phase(tmp_path, monkeypatch):
    session = _lab_session(tmp_path, monkeypatch, ['phase.check("first", True, "fine")'])
    run_dir = session.ctx.run_dir
    assert interactive.pending_seals(run_dir) == []
    copy = session.copies[0]
    assert json.loads(copy.read_text())["metadata"]["papermill"]["parameters"]["run_dir"] == str(
        run_dir
    )
    _execute(copy)
    assert interactive.pending_seals(run_dir) == ["00_first"]
    rec = interactive.seal(session.ctx, "00_first")
    assert rec["status"] == "SUCCEEDED", rec["reason"]
    assert rec["mode"] == "interactive" and rec["notebook"] == "00_first.ipynb"
    assert rec["results"] == {} and rec["checks"][0]["check"] == "first"
    headless = runner.run(
        "local",
        notebooks_dir=session.ctx.notebooks_dir,
        out_root=tmp_path / "headless",
        phases=["00"],
    )
    assert set(rec) == set(headless.records[0])  # the same record shape
    assert interactive.pending_seals(run_dir) == []
    copy.write_text(copy.read_text().replace("fine", "edited after sealing"))  # autosave goes on
    assert manifest.verify(run_dir).intact  # incomplete only: 01_second is not sealed yet
    archived = run_dir / "00_first.ipynb"
    archived.write_text(archived.read_text().replace("fine", "forged"))
    assert "00_first.ipynb" in manifest.verify(run_dir).first


def test_a_seal_that_fails_should_be_reported_once_and_tried_again_after_the_next_save(
    tmp_path, monkeypatch
):
    """The serve loop must outlive a failed seal: the person's kernels and work live in it."""
    session = _lab_session(tmp_path, monkeypatch, ['phase.check("first", True)'])
    _execute(session.copies[0])
    chain = session.ctx.run_dir / "manifest.json"
    aside = chain.rename(chain.with_suffix(".aside"))  # the chain cannot be read: sealing fails
    events: list[dict] = []
    for _ in range(3):  # the loop polls the same saved copy again and again
        interactive._seal_pending(session, events.append)
    assert [e["event"] for e in events] == ["seal_failed"]
    assert events[0]["phase"] == "00_first" and "manifest.json" in events[0]["error"]
    assert interactive.pending_seals(session.ctx.run_dir) == ["00_first"]  # still asked for
    aside.rename(chain)
    copy = session.copies[0]
    os.utime(copy, (copy.stat().st_atime, copy.stat().st_mtime + 5))  # the next save
    interactive._seal_pending(session, events.append)
    assert [e["event"] for e in events] == ["seal_failed", "sealed"]
    assert session.sealed[0]["status"] == "SUCCEEDED"


def test_an_abandoned_phase_sealed_by_hand_should_be_failed_and_resume_should_redo_it(
    tmp_path, monkeypatch
):
    session = _lab_session(tmp_path, monkeypatch, ['phase.check("first", True)', "1 / 0"])
    from nbclient.exceptions import CellExecutionError

    with pytest.raises(CellExecutionError):  # the person stops here and walks away
        _execute(session.copies[0])
    assert interactive.pending_seals(session.ctx.run_dir) == []  # finish() never ran
    rec = interactive.seal(session.ctx, "00_first")
    assert rec["status"] == "FAILED" and "ZeroDivisionError" in rec["reason"]
    for key in interactive.lab_kernel_env(session.ctx):
        monkeypatch.delenv(key, raising=False)
    write_phase(session.ctx.notebooks_dir, "00_first", ['phase.check("first", True)'])
    result = runner.resume(session.ctx.run_dir)
    assert [(r["phase"], r["status"], r["mode"]) for r in result.records] == [
        ("00_first", "SUCCEEDED", "headless"),
        ("01_second", "SUCCEEDED", "headless"),
    ]
    assert manifest.verify(session.ctx.run_dir).ok


def test_a_form_in_an_interactive_run_should_stop_run_all_with_one_line(tmp_path, monkeypatch):
    """Even with confirm="auto" on local, the form shows and the cells after it do not run."""
    session = _lab_session(
        tmp_path,
        monkeypatch,
        [
            "from runbook_lib.run import interact\n"
            'c = interact.ask_confirmation("delete 3 rows from a.b", "auto", "notebook default", phase)',
            'phase.check("after the form", True)',
        ],
    )
    from nbclient.exceptions import CellExecutionError

    with pytest.raises(CellExecutionError) as caught:
        nb = _execute(session.copies[0])
    assert caught.value.ename == WaitingForInput.__name__
    nb = nbformat.read(session.copies[0], as_version=4)
    form = next(c for c in nb.cells if "ask_confirmation" in c.source)
    error = next(o for o in form.outputs if o.output_type == "error")
    assert error.traceback == [f"\u23f8 {WaitingForInput('confirm the plan')}"]  # no traceback
    assert any("widget-view" in json.dumps(o) for o in form.outputs)  # the form
    after = next(c for c in nb.cells if "after the form" in c.source)
    assert after.execution_count is None


def test_a_run_should_mix_headless_and_interactive_phases(tmp_path):
    """00 fails headless; `resume --interactive 01` redoes 00 headless, then serves only 01."""
    nbdir = tmp_path / "notebooks"
    write_phase(nbdir, "00_first", ['raise ValueError("planted")'])
    write_phase(nbdir, "01_second", ['phase.check("second", True)'])
    write_phase(nbdir, "02_third", ['phase.check("third", True)'])
    with pytest.raises(PhaseFailedError) as caught:
        runner.run("local", notebooks_dir=nbdir, out_root=tmp_path / "out")
    run_dir = caught.value.result.run_dir
    write_phase(nbdir, "00_first", ['phase.check("first", True)'])
    proc = subprocess.Popen(
        [RUNBOOK, "resume", str(run_dir), "--interactive", "01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith("JupyterLab: "):
                assert "/lab/tree/01_second.ipynb?token=" in line
                break
        assert [p.name for p in interactive.working_dir(run_dir).glob("*.ipynb")] == [
            "01_second.ipynb"
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    man = manifest.load(run_dir)
    assert {k: r["status"] for k, r in manifest.latest_status(man).items()} == {
        "00_first": "SUCCEEDED",
        "01_second": "SKIPPED",
        "02_third": "SKIPPED",
    }
    result = runner.resume(run_dir)  # the rest headless
    assert [r["phase"] for r in result.records] == ["01_second", "02_third"]
    assert manifest.verify(run_dir).ok
