"""Tampered, truncated and killed runs: verify tells them apart, resume and rollback trust nothing
unverified. Real runs (kernels), real `runbook` processes, SIGKILL, an attacker's rehash script."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook_lib import paths
from runbook_lib.errors import AuditChainError, PhaseFailedError
from runbook_lib.platform.schema import RUNBOOK_RUNS
from runbook_lib.run import manifest, runner
from runbook_lib.run.params import load_params
from runbook_lib.statuses import PhaseStatus, Verification
from runbook_lib.warehouse import connect
from tests.phase_notebooks import FAULTS, write_phase
from tests.test_anchor import rehash

OK = ['phase.check("fine", True)', 'phase.record("n", 3)']
BACKUPS = 'phase.record("backups", [{"table": "d.t", "backup": "d.t_backup"}])'


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A project root of its own: notebooks, outputs and the local warehouse under tmp_path."""
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    nbdir = tmp_path / "notebooks"
    write_phase(nbdir, "00_first", OK)
    write_phase(nbdir, "01_cleanup", [BACKUPS, *OK])
    write_phase(nbdir, "02_last", OK)
    write_phase(
        nbdir,
        "90_rollback",
        ['phase.record("restored", backups)', 'phase.check("restored", len(backups) == 1)'],
        params="backups = []\noverwrite = False\n",
    )
    return tmp_path


def _run(root: Path, phases=None) -> Path:
    return runner.run(
        "local", phases=phases, notebooks_dir=root / "notebooks", out_root=root / "outputs"
    ).run_dir


def _command(root: Path, *argv: str) -> tuple[list[str], dict]:
    """Return the `runbook ARGV` command line and environment, rooted at `root`."""
    env = dict(os.environ, RUNBOOK_ROOT=str(root), RUNBOOK_PARAMS_DIR=str(paths.PARAMS_DIR))
    code = "from runbook_lib.cli import entry; entry()"
    return [sys.executable, "-c", code, *argv], env


def _runbook(root: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run the `runbook` command in its own process, rooted at `root`."""
    cmd, env = _command(root, *argv)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)


def _slow_phase(root: Path, marker: Path) -> None:
    """Make phase 01 write `marker`, then hang (after recording its backups)."""
    slow = f'open("{marker}", "w").close()\nimport time\ntime.sleep(120)'
    write_phase(root / "notebooks", "01_cleanup", [BACKUPS, *OK, slow])


def _kill_in_phase(root: Path, *argv: str) -> None:
    """Start `runbook ARGV`; SIGKILL it and its kernel (its process group) inside phase 01."""
    marker = root / "in-phase-01"
    marker.unlink(missing_ok=True)
    _slow_phase(root, marker)
    cmd, env = _command(root, *argv)
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    write_phase(root / "notebooks", "01_cleanup", [BACKUPS, *OK])  # the next attempt is healthy


def _fingerprint(run_dir: Path) -> dict[str, str]:
    """Return every file of the run folder (and its lock) with its sha256."""
    return {
        str(p.relative_to(run_dir.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.parent.rglob("*"))
        if p.is_file()
    }


def test_verify_cli_says_verified_with_the_anchor(root):
    """An untouched run: VERIFIED, exit 0, and where its head is anchored."""
    run_dir = _run(root)
    done = _runbook(root, "verify", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("VERIFIED: 4 records")
    assert "anchor: matches: head" in done.stdout and "runbook_runs" in done.stdout


def test_removed_last_records_and_their_files_are_reported(root):
    """Cutting the last phase and the archive record (and their files) is not a clean run."""
    run_dir = _run(root)
    man = manifest.load(run_dir)
    covered = set(man["records"][-1]["files"]) - {
        "results/00_first.json",
        "results/01_cleanup.json",
    }
    for rel in [*covered, "02_last.ipynb"]:
        (run_dir / rel).unlink()
    man["records"] = man["records"][:2]
    manifest.save(run_dir, man)

    alone = manifest.verify(run_dir, anchored=False)  # the chain alone: incomplete, named
    assert alone.verdict == Verification.INCOMPLETE
    assert alone.first == "no record for planned phase(s) 02_last"
    done = _runbook(root, "verify", str(run_dir))  # with the anchor: tampered
    assert done.returncode == 1
    assert done.stderr.startswith("TAMPERED: records 3..4 were anchored at")
    assert "anchor: differs" in done.stderr


def test_edit_rehashed_by_a_script_is_detected_by_the_anchor(root):
    """An edit with every hash and link recomputed passes the chain, not the anchor."""
    run_dir = _run(root)
    rehash(run_dir, "2", 'results={"n": 999, "backups": []}')
    assert manifest.verify(run_dir, anchored=False).ok
    done = _runbook(root, "verify", str(run_dir))
    assert done.returncode == 1
    assert done.stderr.startswith("TAMPERED: record 2 (01_cleanup) differs from the record")


@pytest.mark.parametrize("how", ["edited", "edited and rehashed"])
def test_resume_refuses_a_failed_record_edited_to_succeeded(root, how):
    """FAILED->SUCCEEDED: resume exits 1 naming the record; nothing changes, nothing is locked."""
    write_phase(root / "notebooks", "01_cleanup", [FAULTS["raises"]])
    with pytest.raises(PhaseFailedError) as caught:
        _run(root)
    run_dir = caught.value.result.run_dir
    if how == "edited":
        man = manifest.load(run_dir)
        man["records"][1]["status"] = PhaseStatus.SUCCEEDED
        manifest.save(run_dir, man)
    else:
        rehash(run_dir, "2", 'status="SUCCEEDED"', "reason=null")
    before = _fingerprint(run_dir)
    log_sha = manifest.sha256_file(run_dir / "deployment_log.md")

    done = _runbook(root, "resume", str(run_dir))
    assert done.returncode == 1
    assert "refusing to resume" in done.stderr and "record 2 (01_cleanup)" in done.stderr
    assert _fingerprint(run_dir) == before  # no lock, no record, no notebook, log untouched
    assert manifest.sha256_file(run_dir / "deployment_log.md") == log_sha
    with pytest.raises(AuditChainError):
        runner.resume(run_dir)


def test_rollback_refuses_a_tampered_run(root):
    """Backups rewritten in the cleanup's record (and rehashed): rollback restores nothing."""
    run_dir = _run(root)
    backups = '[{"table": "d.t", "backup": "d.t_evil"}]'
    rehash(run_dir, "2", f'results={{"n": 3, "backups": {backups}}}')
    before = _fingerprint(run_dir)
    done = _runbook(root, "rollback", "--run", str(run_dir))
    assert done.returncode == 1
    assert "refusing to rollback" in done.stderr and "record 2 (01_cleanup)" in done.stderr
    assert _fingerprint(run_dir) == before


def test_rollback_of_an_intact_run_reopens_and_reseals_it(root):
    """Rollback verifies first, then extends the chain; the new head is anchored again."""
    run_dir = _run(root)
    runner.rollback(run_dir)
    kinds = [r.get("kind") for r in manifest.load(run_dir)["records"]]
    assert kinds[-3:] == [manifest.REOPEN, "rollback", manifest.ARCHIVE]
    result = runner.verify(run_dir)
    assert result.ok and result.anchor.rows == 2


def test_run_killed_mid_phase_is_incomplete_and_resume_completes_it(root):
    """SIGKILL of the runner and its kernel in phase 01: INCOMPLETE (not tampered); resume seals."""
    _kill_in_phase(root, "run", "--env", "local")
    (run_dir,) = (root / "outputs" / "local").glob("2*")

    result = runner.verify(run_dir)
    assert result.verdict == Verification.INCOMPLETE and result.intact
    assert result.missing[0] == "no record for planned phase(s) 01_cleanup, 02_last"
    assert "not in an archive record" in result.missing[1]
    assert result.anchor.state == "unavailable"  # never sealed: not even a warehouse file yet
    done = _runbook(root, "verify", str(run_dir))
    assert done.returncode == 1 and done.stderr.startswith("INCOMPLETE: no record for planned")

    resumed = runner.resume(run_dir, break_stale_lock=True)
    assert resumed.ok and [r["phase"] for r in resumed.records] == ["01_cleanup", "02_last"]
    assert runner.verify(run_dir).ok


def test_a_resume_killed_before_its_first_record_stays_resumable(root):
    """A resume reopens the sealed run first, so its own kill (after it removed the failed
    attempt's archived results file) reads as incomplete, not tampered."""
    write_phase(root / "notebooks", "01_cleanup", [BACKUPS, 'phase.check("holds", False)'])
    with pytest.raises(PhaseFailedError) as caught:
        _run(root)
    run_dir = caught.value.result.run_dir
    assert "results/01_cleanup.json" in manifest.load(run_dir)["records"][-1]["files"]
    _kill_in_phase(root, "resume", str(run_dir))
    result = runner.verify(run_dir)
    assert result.intact and result.verdict == Verification.INCOMPLETE, result.problems
    assert result.anchor.state == "behind"
    assert any(m.startswith("file 01_cleanup.attempt2.ipynb is not sealed") for m in result.missing)
    assert runner.resume(run_dir, break_stale_lock=True).ok
    assert runner.verify(run_dir).ok


def test_missing_anchor_row_is_reported(root):
    """A run whose anchor row was deleted is INCOMPLETE: the head is not anchored."""
    run_dir = _run(root)
    params = load_params("local")
    wh = connect(params)
    table = params.tables.id(RUNBOOK_RUNS)
    wh.execute(f"DELETE FROM {table.sql} WHERE TRUE")  # noqa: S608 - TableId is validated
    done = _runbook(root, "verify", str(run_dir))
    assert done.returncode == 1
    assert done.stderr.startswith("INCOMPLETE: the head is not anchored: no row for run")
    assert "anchor: missing" in done.stderr


def test_verify_reads_the_warehouse_read_only_and_never_waits_for_a_writer(root):
    """While another process holds the DuckDB file for writing, verify reports the anchor
    unavailable at once, and the writer keeps its connection."""
    run_dir = _run(root)
    path = load_params("local").warehouse_path / "nba-props-platform.duckdb"
    hold = (
        f"import duckdb, sys, time\ncon = duckdb.connect({str(path)!r})\n"
        "print('held', flush=True)\nsys.stdin.readline()\n"
        "print(con.execute('SELECT COUNT(*) FROM nba_orchestration.runbook_runs').fetchone()[0])"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "held"
        result = runner.verify(run_dir)
        assert result.anchor.state == "unavailable" and result.verdict == Verification.INCOMPLETE
        assert "could not be read" in result.anchor.detail
        out, _ = writer.communicate("go\n", timeout=60)
        assert out.strip() == "1"  # the writer was not disturbed
    finally:
        if writer.poll() is None:
            writer.kill()
    assert runner.verify(run_dir).ok  # and once it is gone, the anchor is read
