"""Phase kernels forked from the fork server (forkserver.py): real server, real kernels.

A forked kernel must be what a freshly launched one is (a process of its own in its own
session, the phase's environment and folder, a namespace no phase touched, the code on disk),
and when it could not be, the server refuses and the kernel is launched from an interpreter.
"""

from __future__ import annotations

import fcntl
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient

from runbook_lib.run import engine, runner
from runbook_lib.run.forkserver import KERNEL_NAME, SERVER_NAME
from runbook_lib.run.phase import ATTEMPT_ENV
from tests.phase_notebooks import write_phase
from tests.test_crashes import kernels_of

pytestmark = pytest.mark.skipif(not engine.can_fork(), reason="needs fork and pidfd (Linux)")


@pytest.fixture
def probe(tmp_path):
    """A module the server preloads, on the kernels' PYTHONPATH."""
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / "rbk_probe.py").write_text("VALUE = 1\n")
    return folder


@pytest.fixture
def server(tmp_path, probe):
    env = {"PYTHONPATH": os.pathsep.join([str(probe), os.environ.get("PYTHONPATH", "")])}
    forks = engine.fork_server(engine.kernel_name(), env, tmp_path, [["rbk_probe"]])
    forks.env_given = env
    yield forks
    forks.stop()


def _kernel(server, tmp_path, attempt: int = 1, **extra) -> engine.Kernel:
    # pytest changes PYTEST_CURRENT_TEST between the fixture and the test: a difference the
    # server would refuse (test_an_environment_the_server_was_not_started_with_...).
    env = {
        **server.env_given,
        ATTEMPT_ENV: str(attempt),
        **extra,
        "PYTEST_CURRENT_TEST": server.env["PYTEST_CURRENT_TEST"],
    }
    return engine.start_kernel(engine.kernel_name(), "p", env, tmp_path, [], server)


def _eval(kernel: engine.Kernel, *code: str) -> list[str]:
    """Run `code` in the kernel; return the repr of each expression's value, in order."""
    client = BlockingKernelClient()
    client.load_connection_info(kernel.km.get_connection_info())
    # A kernel launched from an interpreter on a loaded machine takes seconds to answer its
    # first heartbeat: the 1 s default would call it dead (set before the channel starts).
    client.hb_channel.time_to_dead = 30.0
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        shown = []
        for line in code:
            reply = client.execute_interactive(
                "", user_expressions={"v": line}, timeout=60, output_hook=lambda msg: None
            )
            value = reply["content"]["user_expressions"]["v"]
            assert value["status"] == "ok", value
            shown.append(value["data"]["text/plain"])
        return shown
    finally:
        client.stop_channels()


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _gone(pid: int, limit_s: float = 30) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True  # exited; its parent has not reaped it yet
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_a_forked_kernel_should_be_a_fresh_process_with_the_phases_environment(server, tmp_path):
    first = _kernel(server, tmp_path, attempt=1)
    second = _kernel(server, tmp_path, attempt=2)
    try:
        assert first.forked == second.forked == "forked"
        pid, ppid, cwd, attempt, loaded = _eval(
            first,
            "__import__('os').getpid()",
            "__import__('os').getppid()",
            "__import__('os').getcwd()",
            f"__import__('os').environ[{ATTEMPT_ENV!r}]",
            "'rbk_probe' in __import__('sys').modules",
        )
        assert int(ppid) == server.process.pid and _comm(int(pid)) == KERNEL_NAME
        assert _comm(server.process.pid) == SERVER_NAME
        assert os.getpgid(int(pid)) == int(pid)  # its own process group: interrupts reach it
        assert cwd == repr(str(tmp_path)) and attempt == "'1'"
        assert loaded == "True"  # preloaded: the phase does not pay for the import
        _eval(first, "globals().__setitem__('left_by_phase', 1)")
        pid2, fresh, attempt2 = _eval(
            second,
            "__import__('os').getpid()",
            "'left_by_phase' not in globals()",
            f"__import__('os').environ[{ATTEMPT_ENV!r}]",
        )
        assert pid2 != pid and fresh == "True" and attempt2 == "'2'"
        assert sorted(kernels_of(os.getpid())) == sorted([int(pid), int(pid2)])
    finally:
        first.shutdown()
        second.shutdown()


def test_shutdown_should_end_a_forked_kernel_and_what_it_started(server, tmp_path):
    kernel = _kernel(server, tmp_path)
    pid, child = _eval(
        kernel,
        "__import__('os').getpid()",
        "__import__('subprocess').Popen(['sleep', '300']).pid",
    )
    kernel.shutdown()
    assert _gone(int(pid)) and _gone(int(child))
    assert not kernels_of(os.getpid())


def test_a_module_changed_on_disk_should_get_a_launched_kernel_with_the_new_code(
    server, tmp_path, probe
):
    warm = _kernel(server, tmp_path)  # the server has loaded rbk_probe once it forked this
    warm.shutdown()
    (probe / "rbk_probe.py").write_text("VALUE = 2  # as a merge would change it\n")
    kernel = _kernel(server, tmp_path)
    try:
        assert kernel.forked.startswith("launched (fork refused: ")
        assert "rbk_probe.py changed since the fork server loaded it" in kernel.forked
        assert _eval(kernel, "__import__('rbk_probe').VALUE") == ["2"]
    finally:
        kernel.shutdown()


def test_an_environment_the_server_was_not_started_with_should_be_refused(server, tmp_path):
    kernel = _kernel(server, tmp_path, RUNBOOK_PARAMS_DIR="/elsewhere")
    try:
        assert "environment asked for differs from the fork server's in RUNBOOK_PARAMS_DIR" in kernel.forked
        assert _eval(kernel, "__import__('os').environ['RUNBOOK_PARAMS_DIR']") == ["'/elsewhere'"]
    finally:
        kernel.shutdown()


def test_a_runner_killed_by_sigkill_should_take_its_fork_server_and_kernels_along(tmp_path):
    """The server dies with the process that started it; its kernels then end themselves."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from runbook_lib.run import engine
        forks = engine.fork_server(engine.kernel_name(), {{}}, Path({str(tmp_path)!r}), [[]])
        kernel = engine.start_kernel(
            engine.kernel_name(), "p", {{}}, Path({str(tmp_path)!r}), [], forks
        )
        print(forks.process.pid, kernel.km.provisioner.pid, kernel.forked, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        server_pid, kernel_pid, how = proc.stdout.readline().split()
        assert how == "forked"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _gone(int(server_pid)), "the fork server outlived the runner"
    assert _gone(int(kernel_pid)), "the forked kernel outlived its server"


def test_a_run_should_fork_every_kernel_and_time_out_a_forked_cell(tmp_path, monkeypatch):
    """Through the runner: each phase's kernel is forked, and a cell past the timeout is
    interrupted in a forked kernel as in a launched one (the phase FAILED, nothing left)."""
    monkeypatch.setattr(runner.paths, "ROOT", tmp_path)
    folder = tmp_path / "notebooks"
    write_phase(folder, "00_first", ['phase.check("first", True)'])
    write_phase(folder, "01_slow", ['phase.check("c", True)', "import time\ntime.sleep(60)"])
    events = []
    with pytest.raises(runner.PhaseFailedError, match="timeout"):
        runner.run(
            "local",
            notebooks_dir=folder,
            out_root=tmp_path / "out",
            cell_timeout=2,
            progress=events.append,
        )
    started = {e["phase"]: e["started"] for e in events if e["event"] == "kernel"}
    assert started == {"00_first": "forked", "01_slow": "forked"}
    assert not kernels_of(os.getpid())


def test_a_preload_that_fails_should_leave_every_kernel_launched(tmp_path, probe):
    """A module that fails at import leaves the server half-loaded: it forks nothing."""
    (probe / "rbk_broken.py").write_text("raise RuntimeError('planted at import')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(probe), os.environ.get("PYTHONPATH", "")])}
    forks = engine.fork_server(engine.kernel_name(), env, tmp_path, [["rbk_broken"]])
    forks.env_given = env
    try:
        kernel = _kernel(forks, tmp_path)
        try:
            assert kernel.forked.startswith("launched (fork refused: importing rbk_broken failed")
            assert _eval(kernel, "1 + 1") == ["2"]
        finally:
            kernel.shutdown()
    finally:
        forks.stop()


def test_a_kernel_watched_through_a_descriptor_above_1023_should_still_be_seen(server, tmp_path):
    """A long-lived runner holding many files watches its kernels through pidfds numbered past
    select()'s 1024 limit (seen in the suite's workers: a phase failed on it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1100:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1100), hard))
    try:
        kernel = _kernel(server, tmp_path)
        process = kernel.km.provisioner.process
        high = fcntl.fcntl(process._fd, fcntl.F_DUPFD, 1024)  # its pidfd, numbered >= 1024
        os.close(process._fd)
        process._fd = high
        assert kernel.forked == "forked" and process.poll() is None
        kernel.shutdown()  # waits for it through the pidfd
        assert process.returncode is not None
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
