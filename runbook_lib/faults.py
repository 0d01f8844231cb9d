"""Named crash points: a step SIGKILLs its own process (or its parent) where a test asks it to.

A crash "between the backup and the delete" cannot be produced on demand by killing a process
from outside: the window is a few milliseconds. Each destructive step therefore calls
`crash_point("cleanup.after_backup")` and friends; when the environment variable
RUNBOOK_FAULT names that point, the process is killed there with a real SIGKILL. Nothing
happens otherwise. The variable's value is `POINT` (kill this process: in a run, the phase's
kernel) or `POINT@runner` (kill the parent, the runner that started this kernel, then wait
for the kernel to be torn down as an orphan, as it is when a runner dies).
"""

from __future__ import annotations

import os
import signal
import time

FAULT_ENV = "RUNBOOK_FAULT"
# How long a kernel whose runner was killed waits for ipykernel's parent poller to end it
# before it ends itself: either way it never goes on past the crash point.
_ORPHAN_WAIT_S = 20.0


def crash_point(name: str) -> None:
    """SIGKILL this process (or its parent, with `@runner`) when RUNBOOK_FAULT names `name`."""
    point, _, target = os.environ.get(FAULT_ENV, "").partition("@")
    if point != name:
        return
    if target == "runner":
        os.kill(os.getppid(), signal.SIGKILL)
        deadline = time.monotonic() + _ORPHAN_WAIT_S
        while time.monotonic() < deadline:
            time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGKILL)
