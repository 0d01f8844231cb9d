"""The chain head anchored outside the archive: a row per sealed head in the warehouse.

An archive folder is only files: whoever can edit them can also recompute every hash and link
of the manifest, and the chain then verifies on its own. So each time a run is sealed (its
archive record, archive.finalise) the run id, the record count, the header hash and the hash of
every record go to `<orchestration>.runbook_runs` in the run's own warehouse, before the
record is saved: a sealed head never exists without its row. `verify` compares the chain with
those rows and names the first record that differs from what was anchored.

Rows are appended, never updated: one row per head, not one per run. Each finalise of a run
(the first run, every resume, every rollback) adds one, so every head the run was ever sealed
with stays checkable, a chain cut back to an earlier head is caught by the later rows, and no
UPDATE is needed (BigQuery DML on just-loaded rows, and the emulator, are the less certain path).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from runbook_lib.errors import AnchorError, RunbookError
from runbook_lib.platform.schema import RUNBOOK_RUNS
from runbook_lib.run.params import Params, load_params
from runbook_lib.warehouse import connect
from runbook_lib.warehouse.base import Warehouse
from runbook_lib.warehouse.ids import TableId

MATCHES, BEHIND, MISSING, UNAVAILABLE, DIFFERS = (
    "matches", "behind", "missing", "unavailable", "differs",
)  # fmt: skip


def _hashes(man: dict) -> list[str]:
    return [r.get("hash") for r in man["records"]]


def row_for(man: dict, header_hash: str) -> dict:
    """Return the runs-table row anchoring the manifest's current head."""
    hashes = _hashes(man)
    return {
        "run_id": man["header"]["run_id"],
        "env": man["header"]["env"],
        "record_count": len(hashes),
        "head_hash": hashes[-1] if hashes else header_hash,
        "header_hash": header_hash,
        "record_hashes": json.dumps(hashes),
        "anchored_at": pd.Timestamp(dt.datetime.now(dt.UTC)),
        "anchored_by": f"{getpass.getuser()}@{socket.gethostname()}",
    }


def where(params: Params) -> str:
    """Return where a run's anchor rows live, for messages."""
    table = params.tables.id(RUNBOOK_RUNS)
    if params.backend == "duckdb":
        return f"{table.dataset}.{table.table} in {params.warehouse_path}"
    return f"{table.project}.{table.dataset}.{table.table}"


def write(wh: Warehouse, table: TableId, row: dict) -> None:
    """Append one anchor row to `table`, creating it if absent (either backend)."""
    frame = pd.DataFrame([row])
    frame["record_count"] = frame["record_count"].astype("Int64")
    frame["anchored_at"] = pd.to_datetime(frame["anchored_at"], utc=True)
    with wh.session():
        wh.ensure_table(table, RUNBOOK_RUNS)
        wh.load_dataframe(table, frame)


def writer(params: Params) -> Callable[[dict], None]:
    """Return what manifest.append calls before saving a new head: write its anchor row."""

    def write_head(man: dict) -> None:
        from runbook_lib.run.manifest import header_hash

        try:
            wh = connect(params, man["header"]["run_id"])
            write(wh, params.tables.id(RUNBOOK_RUNS), row_for(man, header_hash(man)))
        except Exception as e:  # noqa: BLE001 - any failure leaves the run unsealed, said how
            raise AnchorError(man["header"]["run_id"], where(params), e) from e

    return write_head


def read(wh: Warehouse, table: TableId, run_id: str) -> list[dict]:
    """Return the run's anchor rows from `table`, fewest records first; [] when there are none."""
    with wh.session():
        if not wh.table_exists(table):
            return []
        frame = wh.query(
            f"SELECT record_count, head_hash, header_hash, record_hashes, anchored_at "  # noqa: S608 - TableId is validated
            f"FROM {table.sql} WHERE run_id = @run_id ORDER BY record_count, anchored_at",
            {"run_id": run_id},
        )
    return [
        {
            "record_count": int(r.record_count),
            "head_hash": r.head_hash,
            "header_hash": r.header_hash,
            "record_hashes": json.loads(r.record_hashes),
            "anchored_at": str(r.anchored_at),
        }
        for r in frame.itertuples()
    ]


@dataclass
class AnchorCheck:
    """How the chain compares with its anchor rows.

    `state`: matches (the head is the newest anchored head), behind (records after the newest
    anchored head, none of them an archive record: a run continued and not sealed yet), missing
    (no row), unavailable (the warehouse could not be read), differs (tampering: `problems`).
    """

    state: str
    detail: str
    where: str = ""
    rows: int = 0
    problems: list[str] = field(default_factory=list)


def _label(man: dict, seq: int) -> str:
    rec = man["records"][seq - 1]
    return f"record {seq} ({rec.get('phase')})"


def _row_problem(man: dict, header_hash: str, row: dict) -> str | None:
    """Return how the chain disagrees with one anchor row, or None."""
    count, anchored = row["record_count"], row["record_hashes"]
    when = f"anchored at {row['anchored_at']}"
    if row["header_hash"] != header_hash:
        return f"the manifest header differs from the one {when} (edited and rehashed)"
    hashes = _hashes(man)
    for seq, (ours, theirs) in enumerate(zip(hashes, anchored, strict=False), start=1):
        if ours != theirs:
            return f"{_label(man, seq)} differs from the record {when} (edited and rehashed)"
    if count > len(hashes):
        return (
            f"records {len(hashes) + 1}..{count} were {when} but are missing from the manifest "
            f"(the last records were removed)"
        )
    return None


def compare(man: dict, header_hash: str, rows: list[dict], place: str) -> AnchorCheck:
    """Compare the chain with its anchor rows (every row, newest last)."""
    if not rows:
        return AnchorCheck(
            MISSING,
            f"no row for run {man['header']['run_id']} in {place} (deleted, or the warehouse "
            f"was replaced, e.g. by `runbook seed`): an archive edited and rehashed end to end "
            f"would not be caught",
            place,
        )
    problems = [p for p in (_row_problem(man, header_hash, r) for r in rows) if p]
    newest = rows[-1]
    count, total = newest["record_count"], len(man["records"])
    later = man["records"][count:]
    sealed_later = [r for r in later if r.get("kind") == "archive"]
    if not problems and sealed_later:
        seq = sealed_later[0]["seq"]
        problems.append(
            f"{_label(man, seq)} seals records {count + 1}..{seq} that were never anchored "
            f"(appended after the anchored head {count}, then rehashed)"
        )
    if problems:
        return AnchorCheck(DIFFERS, problems[0], place, len(rows), problems)
    head = f"head {newest['head_hash'][:12]}, record {count}, anchored at {newest['anchored_at']}"
    if later:
        return AnchorCheck(
            BEHIND,
            f"{head}; records {count + 1}..{total} are not sealed yet",
            place,
            len(rows),
        )
    return AnchorCheck(MATCHES, head, place, len(rows))


def check(man: dict, header_hash: str) -> AnchorCheck:
    """Read the run's anchor rows from its warehouse and compare; never raise.

    The warehouse is the one the run's params name (its env and stored overrides).
    """
    header = man["header"]
    try:
        params = load_params(header["env"], _plain_overrides(header.get("overrides") or {}))
        place = where(params)
    except RunbookError as e:
        return AnchorCheck(UNAVAILABLE, f"the run's params cannot be loaded: {e}")
    try:
        # Read-only: verify must not take the DuckDB file's write lock from a run writing to
        # it; it fails fast instead, and the anchor is reported unavailable.
        wh = connect(params, read_only=True)
        rows = read(wh, params.tables.id(RUNBOOK_RUNS), header["run_id"])
    except Exception as e:  # noqa: BLE001 - any failure to read means "not checked", said why
        return AnchorCheck(UNAVAILABLE, f"{place} could not be read: {e}", place)
    return compare(man, header_hash, rows, place)


def _plain_overrides(overrides: dict) -> dict:
    """Drop redacted values: they name secrets (webhooks), never where the warehouse is."""
    from runbook_lib.secrets import REDACTED

    return {k: v for k, v in overrides.items() if v != REDACTED}
