"""The `runbook` command's exit: main's code, atexit handlers run, output flushed, no teardown."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import RUNBOOK_PROCESS

# A bad-input command: main returns 2 without changing anything.
BAD = ["run", "--env", "no-such-env"]


def _entry(before: str, *args: str) -> subprocess.CompletedProcess:
    code = f"{before}\nfrom runbook_lib.cli import entry\nentry()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def test_the_command_should_exit_with_mains_code_after_its_atexit_handlers_and_output():
    done = _entry(
        "import atexit, sys\n"
        "atexit.register(lambda: print('handler ran', flush=True))\n"
        "sys.stdout.write('unflushed line')",  # buffered: a pipe is not a terminal
        *BAD,
    )
    assert done.returncode == 2
    assert "error:" in done.stderr and "no-such-env" in done.stderr
    assert done.stdout == "unflushed linehandler ran\n"


def test_a_thread_still_running_should_be_waited_for_as_python_does():
    done = _entry(
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread done'))).start()",
        *BAD,
    )
    assert done.returncode == 2
    assert done.stdout == "thread done\n"


def test_the_tests_run_the_command_as_the_console_script_does():
    assert "entry()" in RUNBOOK_PROCESS[-1]
