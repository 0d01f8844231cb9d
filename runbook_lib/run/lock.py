"""One writer per warehouse: the lock every command that writes takes.

The lock's identity is the warehouse, not the params file's name: the resolved DuckDB file on
local (two params files naming one file share one lock), and the BigQuery project plus its
orchestration dataset elsewhere. On DuckDB the lock is a file beside the warehouse file,
linked into place only if absent; on BigQuery it is a table in the orchestration dataset, created only if
absent (BigQuery answers a second create with 409), so two machines cannot both hold it.

Each lock holds its owner, host, pid, run id, start time, expiry and a lock id. A holder whose
process is gone (same host) or whose expiry has passed is stale; it is broken only when the
caller asks (`--break-stale-lock`). A holder on another host is released by
`runbook unlock --env X --lock-id ID`.

A run's kernels get the run id in RUNBOOK_RUN_ID: a library call or command made inside the
run that holds the lock recognises it as its own and goes on, without taking or releasing it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from runbook_lib import clock
from runbook_lib.errors import LockHeldError, LockIdMismatchError, RunbookError

if TYPE_CHECKING:
    from runbook_lib.run.params import Params
    from runbook_lib.warehouse.base import Warehouse

log = logging.getLogger(__name__)

# Set in a run's kernels (and by `runbook lab --env`): the id of the run that holds the lock.
RUN_ID_ENV = "RUNBOOK_RUN_ID"
LOCK_TABLE = "runbook_writer_lock"
# A BigQuery holder older than this is stale even when its host cannot be asked about its pid.
EXPIRY = dt.timedelta(hours=12)

# Locks this process holds, by warehouse identity: a nested warehouse_lock re-enters.
_HELD: dict[str, dict] = {}


def warehouse_identity(params: Params) -> str:
    """Return what the lock is keyed on: the resolved DuckDB file, or project.orchestration."""
    if params.backend == "duckdb":
        from runbook_lib.warehouse import connect

        return f"duckdb:{connect(params).path.resolve()}"
    return f"bigquery:{params.project}.{params.datasets['orchestration']}"


def lock_file(warehouse_file: Path) -> Path:
    """Return where the lock of a DuckDB warehouse file lives: `<warehouse file>.lock`."""
    return Path(f"{Path(warehouse_file).resolve()}.lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(info: dict, now: dt.datetime | None = None) -> bool:
    """Return whether a holder is gone: same host and its pid dead, or past its expiry."""
    expires = info.get("expires")
    if expires:
        try:
            if (now or clock.now().replace(microsecond=0)) > dt.datetime.fromisoformat(expires):
                return True
        except ValueError:
            pass
    if info.get("host") != socket.gethostname():
        return False
    try:
        pid = int(info.get("pid", -1))
    except (TypeError, ValueError):
        return True
    return pid <= 0 or not _alive(pid)


def _new_info(identity: str, run_id: str, expiry: dt.timedelta | None) -> dict:
    since = clock.now().replace(microsecond=0)
    host = socket.gethostname()
    return {
        "lock_id": secrets.token_hex(6),
        "owner": f"{getpass.getuser()}@{host}",
        "host": host,
        "pid": os.getpid(),
        "run_id": run_id,
        "since": since.isoformat(),
        "expires": (since + expiry).isoformat() if expiry else None,
        "warehouse": identity,
    }


# -- where a lock lives ---------------------------------------------------------------------------


class _FileStore:
    """The DuckDB lock: `<warehouse file>.lock`, created atomically only if absent."""

    expiry = None

    def __init__(self, warehouse_file: Path):
        self.path = lock_file(warehouse_file)
        self.where = str(self.path)

    def create(self, info: dict) -> bool:
        # Written in full to a private file first, then linked into place: link() fails when
        # the lock exists (as O_EXCL does), and nobody ever reads a half-written lock.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{info['lock_id']}")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def read(self) -> dict | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:  # edited by hand: whose it is cannot be told
            return {"owner": "unknown (unreadable lock file)", "pid": "?", "lock_id": "?",
                    "host": "?", "run_id": "?", "since": "?"}  # fmt: skip

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


class _TableStore:
    """The BigQuery lock: a table in the orchestration dataset, its holder in the description."""

    expiry = EXPIRY

    def __init__(self, wh: Warehouse, dataset: str):
        from runbook_lib.warehouse.ids import TableId

        self.wh, self.table = wh, TableId(wh.project, dataset, LOCK_TABLE)
        self.where = f"table {self.table.project}.{self.table.short}"

    def create(self, info: dict) -> bool:
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        table = bigquery.Table(
            f"{self.table.project}.{self.table.short}",
            schema=[bigquery.SchemaField("lock_id", "STRING")],
        )
        # The holder rides on the create itself: no moment where the table exists empty.
        table.description = json.dumps(info)
        if not self.wh.dataset_exists(self.table.dataset):  # a project not yet deployed to
            self.wh.create_dataset(self.table.dataset)
        try:
            self.wh.client.create_table(table)
        except gexc.Conflict:
            return False
        return True

    def read(self) -> dict | None:
        from google.api_core import exceptions as gexc

        try:
            table = self.wh.client.get_table(f"{self.table.project}.{self.table.short}")
        except gexc.NotFound:
            return None
        try:
            return json.loads(table.description or "")
        except json.JSONDecodeError:
            return {"owner": "unknown (unreadable lock table)", "lock_id": "?", "run_id": "?",
                    "since": "?", "host": "?", "pid": -1}  # fmt: skip

    def delete(self) -> None:
        self.wh.client.delete_table(f"{self.table.project}.{self.table.short}", not_found_ok=True)


def _store(params: Params, wh: Warehouse | None = None):
    from runbook_lib.warehouse import connect

    wh = wh or connect(params)
    if params.backend == "duckdb":
        return _FileStore(wh.path.resolve())
    return _TableStore(wh, params.datasets["orchestration"])


# -- taking and giving back -------------------------------------------------------------------------


def holder(params: Params, wh: Warehouse | None = None) -> dict | None:
    """Return who holds the warehouse's lock, or None when nobody does."""
    return _store(params, wh).read()


def _held_error(params: Params, info: dict, where: str, stale: bool) -> LockHeldError:
    return LockHeldError(
        owner=str(info.get("owner", "?")),
        run_id=str(info.get("run_id", "?")),
        since=str(info.get("since", "?")),
        path=where,
        host=str(info.get("host", "?")),
        pid=info.get("pid", "?"),
        lock_id=str(info.get("lock_id", "?")),
        env=params.env,
        stale=stale,
    )


def acquire(
    params: Params, run_id: str, break_stale: bool = False, wh: Warehouse | None = None
) -> dict:
    """Take the warehouse's lock for `run_id`; raise LockHeldError while another holds it."""
    store = _store(params, wh)
    info = _new_info(warehouse_identity(params), run_id, store.expiry)
    for _ in range(3):
        if store.create(info):
            return info
        held = store.read()
        if held is None:  # released between our create and our read
            continue
        stale = is_stale(held)
        if not (stale and break_stale):
            raise _held_error(params, held, store.where, stale)
        log.warning(
            "breaking stale lock %s of %s on %s (pid %s, run %s, since %s)",
            held.get("lock_id"), held.get("owner"), held.get("host"), held.get("pid"),
            held.get("run_id"), held.get("since"),
        )  # fmt: skip
        # Re-read right before deleting: another breaker may have replaced it meanwhile.
        again = store.read()
        if again and again.get("lock_id") == held.get("lock_id"):
            store.delete()
    raise _held_error(params, store.read() or {}, store.where, False)


def release(params: Params, info: dict, wh: Warehouse | None = None) -> None:
    """Give the lock back if `info` (what acquire returned) still holds it."""
    store = _store(params, wh)
    held = store.read()
    if held and held.get("lock_id") == info.get("lock_id"):
        store.delete()


def unlock(params: Params, lock_id: str, wh: Warehouse | None = None) -> dict | None:
    """Release the lock whose id is `lock_id`; return what it held (None when none was held).

    A wrong id changes nothing (LockIdMismatchError names the real holder). A holder alive on
    this host is refused: stop its process instead.
    """
    store = _store(params, wh)
    held = store.read()
    if held is None:
        return None
    if held.get("lock_id") != lock_id:
        raise LockIdMismatchError(params.env, lock_id, held)
    if held.get("host") == socket.gethostname() and not is_stale(held):
        raise RunbookError(
            f"lock {lock_id} is held by pid {held.get('pid')} on this host, which is still "
            f"running (run {held.get('run_id')}); nothing changed (to fix this, stop that "
            f"process or wait for it to end)"
        )
    store.delete()
    return held


def _own_run(held: dict | None) -> bool:
    """Return whether `held` is the lock of the run this process runs inside (its kernel)."""
    inside = os.environ.get(RUN_ID_ENV)
    return bool(held and inside and held.get("run_id") == inside)


@contextmanager
def warehouse_lock(
    params: Params, run_id: str, break_stale: bool = False, *, wh: Warehouse | None = None
) -> Iterator[dict]:
    """Hold the warehouse's lock for a block; yield what the lock holds.

    Re-entrant: inside the block of this process, or inside a run that holds the lock (its
    kernels carry the run id in RUNBOOK_RUN_ID), the lock is recognised and neither taken nor
    released again.
    """
    identity = warehouse_identity(params)
    if identity in _HELD:
        yield _HELD[identity]
        return
    if wh is None:  # one connection (one BigQuery client) for the read, take and release
        from runbook_lib.warehouse import connect

        wh = connect(params)
    if os.environ.get(RUN_ID_ENV):
        held = holder(params, wh)
        if _own_run(held):
            yield held
            return
    info = acquire(params, run_id, break_stale, wh)
    _HELD[identity] = info
    try:
        yield info
    finally:
        _HELD.pop(identity, None)
        release(params, info, wh)


def check_writer(params: Params, run_id: str, wh: Warehouse | None = None) -> None:
    """Refuse to go on while another run holds the warehouse's lock (a phase's first write).

    Inside the run that holds it (or when nobody does) this returns quietly.
    """
    if warehouse_identity(params) in _HELD:
        return
    held = holder(params, wh)
    if held is None or _own_run(held) or held.get("run_id") == run_id:
        return
    raise _held_error(params, held, _store(params, wh).where, is_stale(held))
