"""The deployment log explains in words what the run's numbers mean: here, its two cutoffs."""

from __future__ import annotations

import pytest

from runbook_lib import paths
from runbook_lib.run import runner
from tests.phase_notebooks import write_phase


@pytest.fixture(autouse=True)
def _own_root(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "ROOT", tmp_path)


def _log(tmp_path, cells_03: list[str]) -> str:
    nb = tmp_path / "nb"
    write_phase(
        nb, "02_cleanup", ['phase.record("cutoff", "2025-04-03")', 'phase.check("c", True)']
    )
    write_phase(nb, "03_function", [*cells_03, 'phase.check("c", True)'])
    result = runner.run("local", notebooks_dir=nb, out_root=tmp_path / "out")
    log = (result.run_dir / "deployment_log.md").read_text()
    return log.split("## Cutoffs", 1)[1].split("## Notes", 1)[0]


def test_the_log_says_which_cutoff_each_step_used_and_why_they_differ(tmp_path):
    """02 kept rows dated on its cutoff; 03's scheduled run a day later deleted exactly those."""
    audit = '{"cutoff_date": "2025-04-04", "status": "success"}'
    text = _log(
        tmp_path, [f'phase.record("function", {{"rows_deleted": 810, "audit_row": {audit}}})']
    )
    assert "Phase 02 (the one-off cleanup, today 2025-04-10): cutoff 2025-04-03" in text
    assert "rows dated on 2025-04-03 were kept" in text
    assert "cutoff 2025-04-04 = that day minus the same TTL; it deleted 810 rows" in text
    assert "the ones dated 2025-04-03 that phase 02 kept" in text
    assert "builds its context from PGS (the fallback)" in text


def test_without_a_scheduled_run_the_log_says_there_was_no_second_cutoff(tmp_path):
    """A dry-run 03 records no audit row: one cutoff, and the log says why there is no other."""
    text = _log(tmp_path, ['phase.record("function", {"deployed": False, "audit_row": {}})'])
    assert "cutoff 2025-04-03" in text
    assert "Phase 03: its scheduled run recorded no cutoff" in text
    assert "Why two cutoffs" not in text
