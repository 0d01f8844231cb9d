"""The function server forked from a run's fork server (phases 03 and 05 in a forked kernel).

A forked server must be what a launched `python -m functions_framework` is: the BUILT BUNDLE's
code (not the fork server's preloaded copy of the library), the bundle first on the path, no
bytecode written, unbuffered output in its log, the same stop (no process left, stragglers
killed), and where the fork server refuses, a launched server instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runbook_lib.errors import DeployError
from runbook_lib.platform.cloud_function import local
from runbook_lib.run import engine, function_phase
from runbook_lib.run.forkserver import PROCESS_NAME, SOCKET_ENV
from tests import test_cloud_function as launched
from tests.test_cloud_function import listening, processes_of, stale
from tests.test_forkserver import _gone

# The launched server's fixtures: its bundle, warehouse, receiver and environment.
bundle, wh, receiver, fn_env = launched.bundle, launched.wh, launched.receiver, launched.fn_env

pytestmark = pytest.mark.skipif(not engine.can_fork(), reason="needs fork and pidfd (Linux)")

# What the fork server preloads: the repo's copy of the library the bundle also holds.
PRELOADED = [
    "pandas",
    "runbook_lib.platform.cloud_function.config",
    "runbook_lib.platform.cleanup",
    "runbook_lib.warehouse.duckdb_backend",
]

WHERE = """
import os, sys
import functions_framework

@functions_framework.http
def where(request):
    print("printed by the function before it answers")
    return {
        "library": sorted(
            m.__file__ for n, m in list(sys.modules.items())
            if n.split(".")[0] == "runbook_lib" and getattr(m, "__file__", None)
        ),
        "path": sys.path[:2],
        "cwd": os.getcwd(),
        "writes_bytecode": not sys.dont_write_bytecode,
        "unbuffered": os.environ.get("PYTHONUNBUFFERED"),
        "marker": os.environ.get("RBK_MARKER"),
    }
"""


def _fork_server(request, tmp_path, monkeypatch, stages, env=None):
    """Start a fork server and make it this process's, as a run's kernel finds it."""
    # pytest names the running phase of the test in PYTEST_CURRENT_TEST: the server gets the
    # value the test body asks with.
    during = {"PYTEST_CURRENT_TEST": f"{request.node.nodeid} (call)", **(env or {})}
    server = engine.fork_server(engine.kernel_name(), during, tmp_path, stages)
    request.addfinalizer(server.stop)
    # A run's kernel asks once it runs, forked by the server: the server is up by then.
    deadline = time.monotonic() + 60
    while not Path(server.socket_path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    monkeypatch.setenv(SOCKET_ENV, server.socket_path)
    return server


@pytest.fixture
def forks(request, tmp_path, monkeypatch):
    """A run's fork server with the repo's library preloaded (the handle waits for it)."""
    return _fork_server(request, tmp_path, monkeypatch, [PRELOADED])


@pytest.fixture(params=["launched", "forked"])
def started_as(request, tmp_path, monkeypatch):
    """The fork server to start a server from (None: launched), and the expected way."""
    if request.param == "launched":
        return None, "launched"
    return _fork_server(request, tmp_path, monkeypatch, [PRELOADED]), "forked"


def test_a_server_serves_the_bundles_code_as_launched_whichever_way_it_starts(
    bundle, tmp_path, started_as
):
    """Forked, the bundle's copy of the library is imported, not the one the fork server
    preloaded; the path, folder, environment, bytecode and unbuffered output are a launched
    interpreter's."""
    forks, how = started_as
    served = shutil.copytree(bundle, tmp_path / "served")
    with (served / "main.py").open("a") as main:
        main.write(WHERE)
    server = local.LocalFunctionServer(served, "where", "http", {"RBK_MARKER": "set"})
    server.launch(forks)
    try:
        status, text = server.post({}, b"")
        printed = server.output()  # before stop: unbuffered, the line is in the log now
    finally:
        server.stop(answered=True)
    assert server.started == how and status == 200
    answer = json.loads(text)
    assert answer["library"] and all(f.startswith(f"{served}/") for f in answer["library"])
    assert answer["path"] == [str(served), str(served)] and answer["cwd"] == str(served)
    assert answer["writes_bytecode"] is False and answer["unbuffered"] == "1"
    assert answer["marker"] == "set"
    assert "printed by the function before it answers" in printed
    assert not list(served.rglob("__pycache__"))


@pytest.mark.parametrize("answered", [False, True], ids=["shutdown", "answered"])
def test_a_forked_server_answers_and_its_stop_leaves_no_process(
    bundle, local_params, fn_env, forks, answered
):
    server = local.LocalFunctionServer(bundle, "health", "http", fn_env).launch(forks)
    try:
        status, text = server.post({}, b"")
        assert status == 200 and json.loads(text)["project"] == local_params.project
        pids = processes_of(server)
        assert len(pids) >= 2  # the master and at least one worker
        assert Path(f"/proc/{pids[0]}/comm").read_text().strip() == PROCESS_NAME
    finally:
        server.stop(answered=answered)
    assert server.started == "forked"
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not listening(server.url)
    assert not server.log_path.exists() and not Path(f"{server.log_path}.exit").exists()


LINGER = """
import os, signal
import functions_framework

@functions_framework.http
def linger(request):
    pid = os.fork()  # no exec: it keeps the server's command line and process group
    if pid == 0:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            signal.pause()
    return {"lingering": pid}
"""


def test_a_server_whose_master_was_killed_leaves_no_process_after_stop(tmp_path, started_as):
    """A master killed by SIGKILL leaves its worker, and a process the worker forked that
    never ends by itself: stop finds them (launched: by the server's command line; forked: in
    the process group its master led) and kills them."""
    forks, how = started_as
    (tmp_path / "main.py").write_text(LINGER)
    server = local.LocalFunctionServer(tmp_path, "linger", "http", {}).launch(forks)
    try:
        status, text = server.post({}, b"")
        master, *workers = processes_of(server)
        os.kill(master, signal.SIGKILL)
        server.process.wait(timeout=30)
    finally:
        server.stop(answered=True)
    assert server.started == how and status == 200 and workers
    assert all(_gone(pid) for pid in [*workers, json.loads(text)["lingering"]])
    assert _closed(server.url)


def test_a_forked_server_that_cannot_start_fails_the_trigger_and_is_stopped(
    bundle, wh, local_params, tmp_path, forks
):
    """Phase 03's deploy forks the server (its kernel finds the fork server in its
    environment); a bundle that cannot load fails the trigger with the server's own output."""
    broken = shutil.copytree(bundle, tmp_path / "broken")
    (broken / "main.py").write_text("raise ImportError('the bundle lost its library')\n")
    params = local_params.model_copy(
        update={"alerts": local_params.alerts.model_copy(update={"webhook_url": None})}
    )
    deployment = function_phase.deploy(params, broken, dry_run=False)
    assert deployment.server.started == "forked"
    with pytest.raises(DeployError, match="(?s)functions-framework exited:.*lost its library"):
        function_phase.trigger_and_stop(deployment)
    assert deployment.server.process.poll() is not None
    assert stale(wh, params.tables) == 5  # nothing ran


def test_a_refused_fork_launches_the_server(
    request, bundle, local_params, fn_env, tmp_path, monkeypatch
):
    """A fork server started with another environment refuses; the server is launched (its
    command line is functions-framework's, not the fork server's) and answers all the same."""
    forks = _fork_server(request, tmp_path, monkeypatch, [PRELOADED], {"RBK_ONLY_THERE": "1"})
    server = local.LocalFunctionServer(bundle, "health", "http", fn_env).launch(forks)
    try:
        status, text = server.post({}, b"")
        command = Path(f"/proc/{server.process.pid}/cmdline").read_bytes().split(b"\0")
    finally:
        server.stop(answered=True)
    assert server.started.startswith("launched (fork refused: ")
    assert "differs from the fork server's in RBK_ONLY_THERE" in server.started
    assert command[1:3] == [b"-m", b"functions_framework"]
    assert status == 200 and json.loads(text)["project"] == local_params.project


def test_a_forked_server_dies_with_the_process_that_asked_for_it(bundle, fn_env, forks):
    """A launched server is in its kernel's process group and dies with the kernel; a forked
    one leads a group of its own, so the fork server ends it when its asker ends (SIGKILL)."""
    script = textwrap.dedent(
        f"""
        import time
        from runbook_lib.platform.cloud_function import local
        from runbook_lib.run.forkserver import ForkClient
        server = local.LocalFunctionServer({str(bundle)!r}, "health", "http", {fn_env!r})
        server.launch(ForkClient.from_env()).post({{}}, b"")  # answered: a worker runs
        pid = server.process.pid
        workers = open(f"/proc/{{pid}}/task/{{pid}}/children").read().split()
        print(server.started.replace(" ", "_"), server.port, pid, *workers, flush=True)
        time.sleep(600)
        """
    )
    # os.environ given explicitly: a C library in the test process may have set variables
    # (curses: COLUMNS, LINES) a child would inherit and the fork server was not started with.
    asker = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        how, port, *pids = asker.stdout.readline().split()
        assert how == "forked" and len(pids) >= 2
    finally:
        asker.send_signal(signal.SIGKILL)
        asker.wait()
    assert all(_gone(int(pid)) for pid in pids)
    assert _closed(f"http://127.0.0.1:{port}/")


def _closed(url: str, limit_s: float = 30) -> bool:
    """Return whether nothing listens on `url`'s port, waiting for it: a killed worker shows as
    a zombie (_gone) while its other threads still exit, its sockets still open."""
    deadline = time.monotonic() + limit_s
    while listening(url) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not listening(url)


def _group_gone(pgid: int, limit_s: float = 30) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def test_a_process_a_module_run_forks_never_writes_the_runs_exit_status(forks, tmp_path):
    """A gunicorn worker is forked by the run and ends through the same code: only the run's
    own end writes its exit status."""
    (tmp_path / "rbk_forker.py").write_text(
        textwrap.dedent(
            """
            import os, sys, time
            parent = os.getpid()
            if os.fork() == 0:
                while os.getppid() == parent:  # outlive the run, then end with another code
                    time.sleep(0.01)
                sys.exit(3)
            sys.exit(0)
            """
        )
    )
    output = tmp_path / "run"
    process = forks.run_module("rbk_forker", [], tmp_path, dict(os.environ), output)
    assert process.wait(timeout=60) == 0
    assert _group_gone(process.pid)
    assert (tmp_path / "run.exit").read_text() == "0"


def test_a_fork_server_with_logging_configured_refuses_a_fresh_module_run(
    request, tmp_path, monkeypatch, bundle, fn_env
):
    """The bundle's basicConfig would do nothing in a process whose logging a preloaded module
    set up: the server refuses, and the server is launched."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "rbk_logs.py").write_text("import logging\nlogging.basicConfig()\n")
    monkeypatch.setenv("PYTHONPATH", str(mods))
    forks = _fork_server(request, tmp_path, monkeypatch, [["rbk_logs"]])
    server = local.LocalFunctionServer(bundle, "health", "http", fn_env).launch(forks)
    try:
        assert server.post({}, b"")[0] == 200
    finally:
        server.stop(answered=True)
    assert server.started == "launched (fork refused: logging was configured in the fork server)"
