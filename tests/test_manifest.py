"""The manifest's hash chain, verify, redaction and secret scanning (no kernels)."""

from __future__ import annotations

import json

import pytest

from runbook_lib import secrets
from runbook_lib.run import manifest
from runbook_lib.statuses import Verification


@pytest.fixture
def run_dir(tmp_path):
    """A run dir with two archived notebooks and their chained records."""
    manifest.create(tmp_path, {"run_id": "r1", "env": "local", "created_at": "2025-04-10T00:00"})
    for name in ("00_a", "01_b"):
        (tmp_path / f"{name}.ipynb").write_text(json.dumps({"cells": [], "name": name}))
        manifest.append(
            tmp_path,
            {
                "phase": name,
                "status": "SUCCEEDED",
                "results": {"n": 1},
                "notebook": f"{name}.ipynb",
            },
        )
    return tmp_path


def test_verify_says_an_unsealed_run_is_intact_but_incomplete(run_dir):
    """Two untouched records and no archive record: nothing changed, the run is not sealed."""
    result = manifest.verify(run_dir, anchored=False)
    assert result.intact and result.records == 2 and result.verdict == Verification.INCOMPLETE
    assert result.first.startswith("the chain ends in record 2 (01_b), not in an archive record")


def test_verify_names_an_edited_notebook(run_dir):
    """Editing one archived notebook is found and the file is named."""
    (run_dir / "01_b.ipynb").write_text(json.dumps({"cells": [], "name": "edited"}))
    result = manifest.verify(run_dir, anchored=False)
    assert not result.ok and result.first.startswith("file 01_b.ipynb")


def test_verify_names_an_edited_record(run_dir):
    """Editing a recorded result breaks that record's hash and names it."""
    man = manifest.load(run_dir)
    man["records"][0]["results"]["n"] = 999
    manifest.save(run_dir, man)
    result = manifest.verify(run_dir, anchored=False)
    assert result.first.startswith("record 1 (00_a)") and "edited" in result.first


def test_verify_finds_a_removed_record(run_dir):
    """Removing a record breaks the chain at the record after it."""
    man = manifest.load(run_dir)
    del man["records"][0]
    manifest.save(run_dir, man)
    assert "does not chain" in manifest.verify(run_dir, anchored=False).first


def test_each_record_chains_to_the_previous_one(run_dir):
    """The first record chains to the header, the second to the first."""
    man = manifest.load(run_dir)
    first, second = man["records"]
    assert first["prev_hash"] == manifest.header_hash(man) and second["prev_hash"] == first["hash"]


def test_redact_hides_secret_named_keys_at_any_depth():
    """Keys containing token, secret, password or webhook lose their value."""
    out = secrets.redact_mapping(
        {"webhook_url": "http://x", "a": {"api_token": "t"}, "limit": 5, "password": None}
    )
    assert out == {
        "webhook_url": secrets.REDACTED,
        "a": {"api_token": secrets.REDACTED},
        "limit": 5,
        "password": None,
    }


def test_scrub_file_removes_secret_values_from_an_archive(tmp_path):
    """A secret value that reached a notebook is replaced and reported."""
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"source": 'url = "https://hooks.example/abc123"'}))
    known = secrets.secret_values({"alerts": {"webhook_url": "https://hooks.example/abc123"}})
    assert secrets.scrub_file(path, known) == 1
    assert "abc123" not in path.read_text() and secrets.REDACTED in path.read_text()


@pytest.fixture
def archived(run_dir):
    """The run dir plus the files no phase record covers, sealed by an archive record."""
    (run_dir / "deployment_log.md").write_text("- **Records Deleted**: 8,782\n")
    (run_dir / "report.html").write_text("<html>8,782</html>")
    (run_dir / "results").mkdir()
    (run_dir / "results" / "00_a.json").write_text('{"n": 1}')
    (run_dir / "function_bundle" / "runbook_lib").mkdir(parents=True)
    (run_dir / "function_bundle" / "main.py").write_text("def cleanup(): ...\n")
    (run_dir / "function_bundle" / "runbook_lib" / "errors.py").write_text("class E: ...\n")
    manifest.append_archive(run_dir)
    return run_dir


def test_archive_record_hashes_every_file_no_phase_record_covers(archived):
    """Results, log, report and bundle are in the archive record; notebooks and manifest not."""
    rec = manifest.load(archived)["records"][-1]
    assert rec["kind"] == manifest.ARCHIVE and rec["prev_hash"] is not None
    assert sorted(rec["files"]) == [
        "deployment_log.md",
        "function_bundle/main.py",
        "function_bundle/runbook_lib/errors.py",
        "report.html",
        "results/00_a.json",
    ]
    assert rec["files"]["report.html"] == manifest.sha256_file(archived / "report.html")
    assert (
        manifest.verify(archived, anchored=False).ok
        and manifest.verify(archived, anchored=False).files == 5
    )


def test_verify_names_an_edited_deployment_log(archived):
    """Changing 8,782 to 8,781 in deployment_log.md fails verify and names the file."""
    log = archived / "deployment_log.md"
    log.write_text(log.read_text().replace("8,782", "8,781"))
    result = manifest.verify(archived, anchored=False)
    assert not result.ok
    assert (
        result.first == "file deployment_log.md of record 3 (archive) changed after it was archived"
    )


@pytest.mark.parametrize(
    "rel", ["results/00_a.json", "report.html", "function_bundle/runbook_lib/errors.py"]
)
def test_verify_names_a_missing_archived_file(archived, rel):
    """A results file, the report or a bundle file that went missing is named."""
    (archived / rel).unlink()
    assert (
        manifest.verify(archived, anchored=False).first
        == f"file {rel} of record 3 (archive) is missing"
    )


def test_verify_names_a_file_added_after_archiving(archived):
    """A file no record covers is named, so dropping the archive record does not hide an edit."""
    (archived / "results" / "99_extra.json").write_text("{}")
    assert manifest.verify(archived, anchored=False).first == (
        "file results/99_extra.json was added after the run was sealed (it is covered by no record)"
    )
    man = manifest.load(archived)
    man["records"].pop()  # the archive record removed, then the log edited
    manifest.save(archived, man)
    result = manifest.verify(archived, anchored=False)  # unsealed now: incomplete, still named
    assert "file deployment_log.md is not sealed yet" in " ".join(result.missing)


def test_verify_checks_only_the_latest_archive_record(archived):
    """A re-finalised run (resume, rollback) is checked against its newest archive record."""
    (archived / "deployment_log.md").write_text("rewritten by a resumed run\n")
    manifest.append_archive(archived)
    assert manifest.verify(archived, anchored=False).ok


def test_archive_records_are_not_phases(archived):
    """latest_status lists the phases only."""
    assert list(manifest.latest_status(manifest.load(archived))) == ["00_a", "01_b"]


def test_jupyter_checkpoints_and_bytecode_are_not_archived(archived):
    """Opening an archive in JupyterLab or importing its bundle does not fail verify."""
    (archived / ".ipynb_checkpoints").mkdir()
    (archived / ".ipynb_checkpoints" / "00_a-checkpoint.ipynb").write_text("{}")
    (archived / "function_bundle" / "__pycache__").mkdir()
    (archived / "function_bundle" / "__pycache__" / "main.pyc").write_bytes(b"\0")
    assert manifest.verify(archived, anchored=False).ok


def test_a_planned_phase_without_a_record_makes_the_run_incomplete(tmp_path):
    """Every planned phase needs a record: the ones without are named, in plan order."""
    header = {"run_id": "r1", "env": "local", "planned": ["00_a", "01_b", "02_c"]}
    manifest.create(tmp_path, header)
    manifest.append(tmp_path, {"phase": "00_a", "status": "SUCCEEDED"})
    manifest.append_archive(tmp_path)
    result = manifest.verify(tmp_path, anchored=False)
    assert result.intact and result.missing == ["no record for planned phase(s) 01_b, 02_c"]


def test_interrupted_and_unknown_records_are_chained_and_checked_like_any_other(tmp_path):
    """An INTERRUPTED attempt or a record of a kind verify does not know is still hashed,
    linked and its notebook checked; a phase with only such a record has a record."""
    manifest.create(tmp_path, {"run_id": "r1", "env": "local", "planned": ["00_a"]})
    (tmp_path / "00_a.ipynb").write_text("{}")
    manifest.append(tmp_path, {"phase": "00_a", "status": "INTERRUPTED", "notebook": "00_a.ipynb"})
    manifest.append(tmp_path, {"phase": "00_a", "kind": "intent", "status": "STARTED"})
    manifest.append_archive(tmp_path)
    assert manifest.verify(tmp_path, anchored=False).ok
    (tmp_path / "00_a.ipynb").write_text('{"edited": 1}')
    assert manifest.verify(tmp_path, anchored=False).first == (
        "file 00_a.ipynb of record 1 (00_a) changed after it was archived"
    )


def test_a_reopened_run_reports_files_it_rewrote_as_not_sealed_again(archived):
    """After a reopen record (a resume that was killed) a rewritten results file is incomplete,
    not tampering: the next seal covers it. Reopen records are not phases."""
    manifest.append(archived, manifest.reopen_record("resume"))
    (archived / "results" / "00_a.json").unlink()
    result = manifest.verify(archived, anchored=False)
    assert result.intact and result.verdict == Verification.INCOMPLETE
    assert "file results/00_a.json of record 3 (archive) is missing (not sealed again yet)" in (
        result.missing
    )
    assert list(manifest.latest_status(manifest.load(archived))) == ["00_a", "01_b"]
