"""The manifest's hash chain, verify, redaction and secret scanning (no kernels)."""

from __future__ import annotations

import json

import pytest

from runbook_lib.run import manifest


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


def test_verify_passes_on_an_untouched_run(run_dir):
    """verify accepts a run nobody changed."""
    result = manifest.verify(run_dir)
    assert result.ok and result.records == 2


def test_verify_names_an_edited_notebook(run_dir):
    """Editing one archived notebook is found and the file is named."""
    (run_dir / "01_b.ipynb").write_text(json.dumps({"cells": [], "name": "edited"}))
    result = manifest.verify(run_dir)
    assert not result.ok and result.first.startswith("file 01_b.ipynb")


def test_verify_names_an_edited_record(run_dir):
    """Editing a recorded result breaks that record's hash and names it."""
    man = manifest.load(run_dir)
    man["records"][0]["results"]["n"] = 999
    manifest.save(run_dir, man)
    result = manifest.verify(run_dir)
    assert result.first.startswith("record 1 (00_a)") and "edited" in result.first


def test_verify_finds_a_removed_record(run_dir):
    """Removing a record breaks the chain at the record after it."""
    man = manifest.load(run_dir)
    del man["records"][0]
    manifest.save(run_dir, man)
    assert "does not chain" in manifest.verify(run_dir).first


def test_each_record_chains_to_the_previous_one(run_dir):
    """The first record chains to the header, the second to the first."""
    man = manifest.load(run_dir)
    first, second = man["records"]
    assert first["prev_hash"] == manifest.header_hash(man) and second["prev_hash"] == first["hash"]


def test_redact_hides_secret_named_keys_at_any_depth():
    """Keys containing token, secret, password or webhook lose their value."""
    out = manifest.redact(
        {"webhook_url": "http://x", "a": {"api_token": "t"}, "limit": 5, "password": None}
    )
    assert out == {
        "webhook_url": manifest.REDACTED,
        "a": {"api_token": manifest.REDACTED},
        "limit": 5,
        "password": None,
    }


def test_scrub_file_removes_secret_values_from_an_archive(tmp_path):
    """A secret value that reached a notebook is replaced and reported."""
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"source": 'url = "https://hooks.example/abc123"'}))
    secrets = manifest.secret_values({"alerts": {"webhook_url": "https://hooks.example/abc123"}})
    assert manifest.scrub_file(path, secrets) == 1
    assert manifest.find_secrets(tmp_path, secrets) == []
