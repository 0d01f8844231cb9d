"""The current time and run ids: one definition each, in UTC.

Standard library only, so the Cloud Function bundle can carry it. Every timestamp the runbook
records is UTC ISO 8601 (`now_iso`); every run id (a runbook run, a backfill, a function
event) is `[prefix-]YYYYMMDDTHHMMSSZ-tail`: it sorts by time, and a backup named after it
still starts with its date (`cleanup_backup.backup_date` reads it from there).
"""

from __future__ import annotations

import datetime as dt
import re
from secrets import token_hex

RUN_ID_TIME = "%Y%m%dT%H%M%SZ"


def now() -> dt.datetime:
    """Return the current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def now_iso(timespec: str = "seconds") -> str:
    """Return the current UTC time as an ISO 8601 string, to the second unless told."""
    return now().isoformat(timespec=timespec)


def new_run_id(prefix: str = "", tail: str = "", when: dt.datetime | None = None) -> str:
    """Return a sortable, unique run id: `[prefix-]` UTC time `-tail` (random hex if none)."""
    stamp = (when or now()).astimezone(dt.UTC).strftime(RUN_ID_TIME)
    run_id = f"{stamp}-{tail or token_hex(2)}"
    return f"{prefix}-{run_id}" if prefix else run_id


def run_tag(run_id: str) -> str:
    """Return the letters and digits of a run id (at most 24): an event id, and so the tail of
    the function run it triggers, that names the runbook run behind it."""
    return re.sub(r"[^A-Za-z0-9]", "", run_id)[:24]
