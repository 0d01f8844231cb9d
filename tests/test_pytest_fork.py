"""The pytest plugin that runs the collected tests in forked workers (phase 01's safeguard tests):
the same results, counts and exit code as in one process; a worker's end reported, never lost."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PLUGIN = ["-p", "runbook_lib.run.pytest_fork"]

CASES = """
import os
import warnings
from pathlib import Path

import pytest

OUT = Path(os.environ["PIDS_DIR"])


@pytest.fixture(scope="module")
def shared():
    return {"set up in": os.getpid()}


@pytest.fixture
def broken():
    raise RuntimeError("set-up fails")


def _mark(name):
    (OUT / f"{name}.{os.getpid()}").write_text("")


@pytest.mark.parametrize("n", range(6))
def test_passes(n, shared):
    _mark(f"passes{n}")
    assert shared["set up in"] == os.getpid()


def test_fails():
    _mark("fails")
    assert 1 == 2, "one is not two"


def test_skipped():
    pytest.skip("not here")


@pytest.mark.xfail(reason="known")
def test_expected_to_fail():
    assert False


def test_setup_error(broken):
    pass


def test_warns():
    warnings.warn("careful", UserWarning)


def test_prints_and_fails():
    print("what the test printed")
    assert False
"""


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PIDS_DIR": str(folder / "pids")}
    (folder / "pids").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--color=no", "-p", "no:cacheprovider",
         "-W", "ignore::pytest.PytestConfigWarning", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _summary(out: str) -> str:
    return re.sub(r" in [0-9.]+s", "", out.strip().splitlines()[-1])


def _pids(folder: Path) -> set[str]:
    return {p.suffix for p in (folder / "pids").iterdir()}


@pytest.fixture
def cases(tmp_path) -> Path:
    (tmp_path / "test_cases.py").write_text(CASES)
    return tmp_path


def test_forked_workers_should_report_what_one_process_reports(cases):
    alone = _pytest(cases, *PLUGIN, "--fork-workers=1", "test_cases.py")
    assert len(_pids(cases)) == 1
    for p in (cases / "pids").iterdir():
        p.unlink()
    forked = _pytest(cases, *PLUGIN, "--fork-workers=3", "test_cases.py")
    assert len(_pids(cases)) == 3, "each worker ran some of the tests"
    assert (
        _summary(forked.stdout)
        == _summary(alone.stdout)
        == ("2 failed, 7 passed, 1 skipped, 1 xfailed, 1 warning, 1 error")
    )
    assert forked.returncode == alone.returncode == 1
    for shown in ("one is not two", "what the test printed", "set-up fails", "careful"):
        assert shown in forked.stdout


def test_a_worker_that_ends_should_have_its_unreported_tests_reported_failed(tmp_path):
    (tmp_path / "test_ends.py").write_text(
        "import os, signal\n"
        "def test_exits():\n    os._exit(3)\n"
        "def test_killed():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        "def test_a():\n    pass\n"
        "def test_b():\n    pass\n"
    )
    run = _pytest(tmp_path, *PLUGIN, "--fork-workers=2", "test_ends.py")
    # Worker 1 ran test_exits then would have run test_a; worker 2 test_killed, then test_b.
    assert _summary(run.stdout) == "4 failed"
    for name in ("test_exits", "test_killed", "test_a", "test_b"):
        assert f"FAILED test_ends.py::{name} - the worker process running this test" in run.stdout
    assert "(pid " in run.stdout and ") exited with code 3 before reporting it" in run.stdout
    assert ") killed by signal 9 before reporting it" in run.stdout
    assert run.returncode == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_run_should_kill_its_workers(tmp_path):
    (tmp_path / "test_wait.py").write_text(
        "import os, time\nfrom pathlib import Path\n"
        "def _wait(name):\n"
        "    (Path(os.environ['PIDS_DIR']) / f'{name}.{os.getpid()}').write_text('')\n"
        "    time.sleep(600)\n"
        "def test_a():\n    _wait('a')\n"
        "def test_b():\n    _wait('b')\n"
    )
    (tmp_path / "pids").mkdir()
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PIDS_DIR": str(tmp_path / "pids")}
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PLUGIN,
         "--fork-workers=2", "test_wait.py"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(_pids(tmp_path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = [int(p.lstrip(".")) for p in _pids(tmp_path)]
        assert len(workers) == 2
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if _alive(pid)], "a worker outlived its run"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; its reaper (init) collects it
