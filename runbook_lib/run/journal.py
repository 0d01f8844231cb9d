"""The journal of one phase attempt: what a destructive step is about to do, then what it did.

`journal/<phase>.jsonl` (`<phase>.attemptN.jsonl` for attempt N > 1) in the run dir, one JSON
object a line, appended and fsynced before the call returns. The cleanup writes its intent
(tables, backup names, row counts, the cutoff) before the first backup, and an outcome line
after each verified backup and each delete. The phase's kernel writes it, headless or in
JupyterLab alike, so a run whose runner or kernel was killed still says what was done: the
runner reads it back into the INTERRUPTED record, the deployment log and the rollback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from runbook_lib.clock import now_iso

JOURNAL_DIR = "journal"
# The events the cleanup writes (platform/cleanup.py): the intent before anything, each verified
# backup, each delete just before it runs and just after it committed, and the end.
INTENT, BACKUP, DELETING, DELETED, DONE = "intent", "backup", "deleting", "deleted", "done"
# The rollback (platform/cleanup_restore.py): each backup's restore before it runs and after.
RESTORING, RESTORED = "restoring", "restored"


class Journal:
    """An append-only, fsynced JSON-lines file; calling it appends one entry."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __call__(self, entry: dict) -> None:
        """Append `entry` (with the time) and fsync it before returning."""
        line = json.dumps({"at": now_iso("milliseconds"), **entry}, sort_keys=True, default=str) + "\n"
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the new file's name must survive a crash as well as its content
            _fsync_dir(self.path.parent)

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[dict]:
    """Return a journal's entries; a torn last line (a crash mid-write) is left out."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def summarize(entries: list[dict]) -> dict:
    """Return what a journal says was done: verified backups, rows deleted, steps left open.

    `unknown` lists the tables whose delete had started (a `deleting` line) with no outcome
    line: the process died around that delete, so it may or may not have committed; rollback
    treats it as done (it re-inserts only the rows missing from the live table).
    """
    intent = next((e for e in entries if e.get("event") == INTENT), None)
    cutoff = (intent or {}).get("cutoff")
    backups = [
        {
            "table": e["table"],
            "backup": e["backup"],
            "backup_rows": e.get("backup_rows"),
            "cutoff": e.get("cutoff", cutoff),
        }
        for e in entries
        if e.get("event") == BACKUP
    ]
    deleted = {e["table"]: int(e.get("rows") or 0) for e in entries if e.get("event") == DELETED}
    started = [e["table"] for e in entries if e.get("event") == DELETING]
    unknown = [t for t in dict.fromkeys(started) if t not in deleted]
    return {
        "intent": intent,
        "backups": backups,
        "deleted": deleted,
        "rows_deleted": sum(deleted.values()),
        "unknown": unknown,
        "done": any(e.get("event") == DONE for e in entries),
        "restoring": [e["backup"] for e in entries if e.get("event") == RESTORING],
        "restored": {
            e["backup"]: int(e.get("rows") or 0) for e in entries if e.get("event") == RESTORED
        },
    }


def describe(summary: dict) -> str:
    """Return one line saying what a journal recorded, e.g. for an INTERRUPTED record."""
    if summary.get("restoring"):
        done = summary.get("restored") or {}
        return (
            f"started restoring {len(summary['restoring'])} backup(s), finished {len(done)} "
            f"({sum(done.values()):,} rows put back); run the rollback again to finish: it "
            f"puts back only what is still missing"
        )
    if not summary.get("intent"):
        return "its journal records no destructive step"
    n_tables = len(summary["intent"].get("tables", []))
    parts = [
        f"intended to back up and clean {n_tables} table(s) (cutoff {summary['intent'].get('cutoff')})"
    ]
    if summary["backups"]:
        parts.append(
            f"made {len(summary['backups'])} verified backup(s): "
            + ", ".join(b["backup"] for b in summary["backups"])
        )
    else:
        parts.append("made no backup")
    if summary["deleted"]:
        parts.append(
            f"deleted {summary['rows_deleted']:,} rows ("
            + ", ".join(f"{n:,} from {t}" for t, n in summary["deleted"].items())
            + ")"
        )
    elif not summary["unknown"]:
        parts.append("deleted nothing")
    if summary["unknown"]:
        parts.append(
            "was killed around the delete of "
            + ", ".join(summary["unknown"])
            + " (outcome not journaled; rollback restores whatever is missing)"
        )
    return "; ".join(parts)
