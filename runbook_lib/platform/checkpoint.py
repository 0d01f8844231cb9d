"""The backfill checkpoint: which dates succeeded, failed (with their error) or were skipped.

A JSON file written atomically (tmp + fsync + rename) under an fcntl lock, read-modified-written
whole, so threads and processes never see half a file. Unlike the original (fact sheet 2.6), a
failed date keeps its error text and is retried on resume even when a later date succeeded.

A file that is not a valid checkpoint raises CheckpointError instead of being replaced by a fresh
state: a silent reset would forget which dates failed and why, which is the very record the
checkpoint exists to keep. `--no-resume` is the explicit way to start over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from runbook_lib.clock import now_iso
from runbook_lib.errors import CheckpointError

JOB_NAME = "player_composite_factors"
VERSION = 1
_KEYS = {
    "version",
    "job_name",
    "start_date",
    "end_date",
    "created_at",
    "last_updated",
    "successful_dates",
    "failed_dates",
    "skipped_dates",
}


def checkpoint_path(folder: Path, start: dt.date, end: dt.date, dates: list | None = None) -> Path:
    """Return the checkpoint file of a range, or of an explicit date list (named by its hash)."""
    name = f"{JOB_NAME}_{start}_{end}"
    if dates is not None:
        digest = hashlib.sha256(",".join(str(d) for d in sorted(dates)).encode()).hexdigest()
        name += f"_dates_{digest[:10]}"
    return Path(folder) / f"{name}.json"


class Checkpoint:
    """One backfill's progress file."""

    def __init__(self, path: Path, start: dt.date, end: dt.date):
        self.path = Path(path)
        self.start, self.end = start, end
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._tmp_path = self.path.with_name(self.path.name + ".tmp")
        self._thread_lock = threading.Lock()

    # -- file access -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self._lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _fresh(self) -> dict:
        return {
            "version": VERSION,
            "job_name": JOB_NAME,
            "start_date": str(self.start),
            "end_date": str(self.end),
            "created_at": now_iso(),
            "last_updated": now_iso(),
            "successful_dates": {},
            "failed_dates": {},
            "skipped_dates": {},
        }

    def _read(self) -> dict:
        if not self.path.exists():
            return self._fresh()
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(str(self.path), f"not readable JSON ({e})") from None
        _validate(state, str(self.path))
        return state

    def _write(self, state: dict) -> None:
        state["last_updated"] = now_iso()
        data = json.dumps(state, indent=2, sort_keys=True)
        with open(self._tmp_path, "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(self._tmp_path, self.path)
        # fsync the folder so the rename itself survives a crash.
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- public API --------------------------------------------------------------------------
    def load(self) -> dict:
        """Return the current state (a fresh one when no file exists; nothing is created)."""
        if not self.path.exists():
            return self._fresh()
        with self._locked(exclusive=False):
            return self._read()

    def reset(self) -> None:
        """Delete the checkpoint file (`--no-resume`)."""
        with self._locked(exclusive=True):
            self.path.unlink(missing_ok=True)

    def record(
        self, successes: dict | None = None, failures: dict | None = None, skips: dict | None = None
    ) -> dict:
        """Record outcomes in one atomic write and return the new state.

        Args:
            successes: date -> players published; the date leaves the failed and skipped lists.
            failures: date -> error text; the date leaves the successful and skipped lists.
            skips: date -> reason (bootstrap, no expected players).
        """
        with self._locked(exclusive=True):
            state = self._read()
            for day, players in (successes or {}).items():
                state["failed_dates"].pop(str(day), None)
                # A date skipped for want of players is processed once they arrive.
                state["skipped_dates"].pop(str(day), None)
                state["successful_dates"][str(day)] = {"players": int(players), "at": now_iso()}
            for day, error in (failures or {}).items():
                state["successful_dates"].pop(str(day), None)
                state["skipped_dates"].pop(str(day), None)
                previous = state["failed_dates"].get(str(day), {})
                state["failed_dates"][str(day)] = {
                    "error": str(error),
                    "attempts": previous.get("attempts", 0) + 1,
                    "at": now_iso(),
                }
            for day, reason in (skips or {}).items():
                state["skipped_dates"][str(day)] = str(reason)
            self._write(state)
            return state

    def pending(self, dates: Iterable[dt.date]) -> list[dt.date]:
        """Return the dates still to do: everything not yet successful (failed ones retried)."""
        done = set(self.load()["successful_dates"])
        return [d for d in dates if str(d) not in done]

    def summary(self) -> dict:
        """Return counts, the last success and each failed date with its error."""
        state = self.load()
        ok = sorted(state["successful_dates"])
        return {
            "path": str(self.path),
            "exists": self.path.exists(),
            "start_date": state["start_date"],
            "end_date": state["end_date"],
            "successful": len(ok),
            "failed": len(state["failed_dates"]),
            "skipped": len(state["skipped_dates"]),
            "last_successful_date": ok[-1] if ok else None,
            "failed_dates": {d: v["error"] for d, v in sorted(state["failed_dates"].items())},
            "last_updated": state["last_updated"],
        }


def _validate(state, path: str) -> None:
    """Raise CheckpointError unless `state` is a checkpoint this version wrote."""
    if not isinstance(state, dict):
        raise CheckpointError(path, "the top level is not a JSON object")
    missing = sorted(_KEYS - set(state))
    if missing:
        raise CheckpointError(path, f"missing keys {missing}")
    if state["job_name"] != JOB_NAME or state["version"] != VERSION:
        raise CheckpointError(path, f"written by {state['job_name']} v{state['version']}")
    for key in ("successful_dates", "failed_dates", "skipped_dates"):
        if not isinstance(state[key], dict):
            raise CheckpointError(path, f"{key} is not an object of date -> details")
        for day in state[key]:
            try:
                dt.date.fromisoformat(day)
            except ValueError:
                raise CheckpointError(path, f"{key} holds {day!r}, not a date") from None
    for day, entry in state["failed_dates"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("error"), str):
            raise CheckpointError(path, f"failed date {day} has no error text")
    both = sorted(set(state["successful_dates"]) & set(state["failed_dates"]))
    if both:
        raise CheckpointError(path, f"dates both successful and failed: {both}")


def clear_checkpoints(folder: Path) -> int:
    """Delete the backfill checkpoints in `folder` (they describe a warehouse being replaced)."""
    files = list(Path(folder).glob(f"{JOB_NAME}_*.json")) if Path(folder).is_dir() else []
    for p in files:
        p.unlink()
    return len(files)
