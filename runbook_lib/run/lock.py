"""One writer per environment: `outputs/<env>/.lock` with owner, pid, run id and start time.

The lock file is created with O_EXCL, so two runs racing for it cannot both win. A lock left
by a process that no longer exists is reported (LockHeldError says the pid is gone) and
broken only when the caller asks for it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from runbook_lib.errors import LockHeldError

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(path: Path) -> dict | None:
    """Return the lock's content, or None when there is no lock."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return {"owner": "unknown (unreadable lock file)", "pid": -1, "run_id": "?", "since": "?"}


def is_stale(info: dict) -> bool:
    """Return whether a lock's process is gone (same host only; another host's lock is live)."""
    if info.get("host") != socket.gethostname():
        return False
    pid = int(info.get("pid", -1))
    return pid <= 0 or not _alive(pid)


def acquire(path: Path, run_id: str, break_stale: bool = False) -> dict:
    """Take the lock for `run_id`; raise LockHeldError while another live run holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "owner": f"{getpass.getuser()}@{socket.gethostname()}",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run_id": run_id,
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_lock(path) or {}
            if held and is_stale(held) and break_stale:
                log.warning(
                    "breaking stale lock of %s (pid %s, run %s, since %s): process gone",
                    held.get("owner"),
                    held.get("pid"),
                    held.get("run_id"),
                    held.get("since"),
                )
                path.unlink(missing_ok=True)
                continue
            stale = (
                " (stale: its process is gone; pass --break-stale-lock)"
                if held and is_stale(held)
                else ""
            )
            raise LockHeldError(
                f"{held.get('owner', '?')} pid {held.get('pid', '?')}{stale}",
                str(held.get("run_id", "?")),
                str(held.get("since", "?")),
                str(path),
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        return info
    raise LockHeldError("unknown", "?", "?", str(path))


def release(path: Path, run_id: str) -> None:
    """Remove the lock if this process and run still hold it."""
    held = read_lock(path)
    if held and held.get("run_id") == run_id and held.get("pid") == os.getpid():
        Path(path).unlink(missing_ok=True)


@contextmanager
def held(path: Path, run_id: str, break_stale: bool = False):
    """Hold the lock for the duration of a block."""
    info = acquire(path, run_id, break_stale)
    try:
        yield info
    finally:
        release(path, run_id)
