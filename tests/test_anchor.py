"""The chain head anchored in the warehouse's runs table, on DuckDB and on BigQuery (bqemulator)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib.platform.schema import RUNBOOK_RUNS
from runbook_lib.run import anchor, manifest

REHASH = Path(__file__).parent / "data" / "tamper" / "rehash.py"


def rehash(run_dir: Path, *args: str) -> None:
    """Edit the manifest and recompute every hash and link, as an attacker's script would."""
    subprocess.run([sys.executable, str(REHASH), str(run_dir), *args], check=True)


def _sealed_run(run_dir: Path, phases=("00_a", "01_b")) -> dict:
    """A run dir with one notebook per phase and an archive record; return its manifest."""
    header = {"run_id": "r1", "env": "local", "created_at": "2025-04-10", "planned": list(phases)}
    manifest.create(run_dir, header)
    for name in phases:
        (run_dir / f"{name}.ipynb").write_text(json.dumps({"cells": [], "name": name}))
        record = {"phase": name, "status": "SUCCEEDED", "notebook": f"{name}.ipynb"}
        manifest.append(run_dir, record)
    (run_dir / "deployment_log.md").write_text("- **Records Deleted**: 8,782\n")
    manifest.append_archive(run_dir)
    return manifest.load(run_dir)


def _anchor_now(wh, table, run_dir: Path) -> None:
    man = manifest.load(run_dir)
    anchor.write(wh, table, anchor.row_for(man, manifest.header_hash(man)))


def _compare(wh, table, run_dir: Path) -> anchor.AnchorCheck:
    man = manifest.load(run_dir)
    rows = anchor.read(wh, table, man["header"]["run_id"])
    return anchor.compare(man, manifest.header_hash(man), rows, str(table))


@pytest.fixture
def anchored(warehouse, tmp_path):
    """A sealed run whose head is anchored in a runs table the anchor itself created."""
    table = warehouse.tables.id(RUNBOOK_RUNS)
    assert not warehouse.wh.table_exists(table)  # not among the seeded platform tables
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _sealed_run(run_dir)
    _anchor_now(warehouse.wh, table, run_dir)
    assert warehouse.wh.table_exists(table)
    return warehouse.wh, table, run_dir


def test_anchored_head_matches_an_untouched_run(anchored):
    """The row written at archive time reads back and matches the chain's head."""
    wh, table, run_dir = anchored
    check = _compare(wh, table, run_dir)
    assert check.state == anchor.MATCHES and check.rows == 1
    assert manifest.load(run_dir)["records"][-1]["hash"][:12] in check.detail


def test_an_edit_rehashed_end_to_end_is_caught_by_the_anchor(anchored):
    """FAILED->SUCCEEDED with every hash and link recomputed: the chain verifies, the anchor not."""
    wh, table, run_dir = anchored
    rehash(run_dir, "2", 'status="FAILED"')
    assert manifest.verify(run_dir, anchored=False).ok  # the chain alone cannot tell
    check = _compare(wh, table, run_dir)
    assert check.state == anchor.DIFFERS
    assert check.detail.startswith("record 2 (01_b) differs from the record anchored at")


def test_records_cut_from_the_end_are_caught_by_the_anchor(anchored):
    """Removing the archive record and the last phase record (rehashed or not) is named."""
    wh, table, run_dir = anchored
    rehash(run_dir, "--truncate", "1")
    check = _compare(wh, table, run_dir)
    assert check.state == anchor.DIFFERS and check.detail.startswith("records 2..3 were anchored")


def test_records_appended_and_sealed_after_the_anchor_are_caught(anchored):
    """A forged SUCCEEDED record plus a new archive record chain fine but were never anchored."""
    wh, table, run_dir = anchored
    manifest.append(run_dir, {"phase": "01_b", "status": "SUCCEEDED", "results": {"forged": 1}})
    manifest.append_archive(run_dir)
    check = _compare(wh, table, run_dir)
    assert check.state == anchor.DIFFERS
    assert check.detail.startswith("record 5 (archive) seals records 4..5 that were never anchored")


def test_a_continued_run_is_behind_until_it_is_sealed_again(anchored):
    """Records after the anchored head, none sealing, are a run still going: behind, not tampered."""
    wh, table, run_dir = anchored
    manifest.append(run_dir, manifest.reopen_record("resume"))
    manifest.append(run_dir, {"phase": "01_b", "status": "SUCCEEDED", "kind": "phase"})
    assert _compare(wh, table, run_dir).state == anchor.BEHIND
    manifest.append_archive(run_dir)
    _anchor_now(wh, table, run_dir)  # what resume's finalise does: one more row, a new head
    check = _compare(wh, table, run_dir)
    assert check.state == anchor.MATCHES and check.rows == 2


def test_an_earlier_head_still_catches_a_rewrite_after_a_resume(anchored):
    """Every row is checked, not only the newest: rewriting the chain before a resume is caught."""
    wh, table, run_dir = anchored
    manifest.append(run_dir, manifest.reopen_record("resume"))
    manifest.append_archive(run_dir)
    _anchor_now(wh, table, run_dir)
    rehash(run_dir, "1", 'status="FAILED"')
    _anchor_now(wh, table, run_dir)  # even with a matching newest row written by the attacker
    check = _compare(wh, table, run_dir)
    assert check.state == anchor.DIFFERS and check.detail.startswith("record 1 (00_a) differs")


def test_a_run_with_no_anchor_row_is_reported_missing(anchored):
    """Deleting the run's rows leaves it unanchored: reported, with why it matters."""
    wh, table, run_dir = anchored
    wh.execute(f"DELETE FROM {table.sql} WHERE run_id = @r", {"r": "r1"})  # noqa: S608
    check = _compare(wh, table, run_dir)
    assert check.state == anchor.MISSING and "edited and rehashed" in check.detail
