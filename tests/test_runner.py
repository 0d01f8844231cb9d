"""The runner against real kernels: small phase notebooks, faults, resume, rollback, lock."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from runbook_lib.errors import LockHeldError, ParamsError, PhaseFailedError
from runbook_lib.run import lock, manifest, runner
from tests.phase_notebooks import FAULTS, write_phase

OK = ['phase.check("first", True, "fine")', 'phase.record("n", 3)']


@pytest.fixture
def nbdir(tmp_path):
    """A notebooks folder with one healthy phase 00."""
    folder = tmp_path / "notebooks"
    write_phase(folder, "00_first", OK)
    return folder


def _run(nbdir, tmp_path, **kw):
    return runner.run("local", notebooks_dir=nbdir, out_root=tmp_path / "out", **kw)


def _statuses(run_dir):
    return {k: r["status"] for k, r in manifest.latest_status(manifest.load(run_dir)).items()}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faulty_phase_is_failed_and_resume_completes_the_run(nbdir, tmp_path, fault):
    """A phase that raises, calls sys.exit(0) or kills its kernel is FAILED; resume finishes."""
    bad = write_phase(nbdir, "01_faulty", ['phase.check("before", True)', FAULTS[fault]])
    write_phase(nbdir, "02_after", ['phase.check("after", True)'])
    with pytest.raises(PhaseFailedError) as caught:
        _run(nbdir, tmp_path)
    assert caught.value.phase == "01_faulty"
    run_dir = caught.value.result.run_dir
    assert _statuses(run_dir) == {
        "00_first": "SUCCEEDED",
        "01_faulty": "FAILED",
        "02_after": "SKIPPED",
    }

    write_phase(nbdir, "01_faulty", ['phase.check("before", True)'])  # the fault removed
    assert bad.exists()
    result = runner.resume(run_dir)
    assert result.ok and [r["phase"] for r in result.records] == ["01_faulty", "02_after"]
    assert set(_statuses(run_dir).values()) == {"SUCCEEDED"}
    assert runner.verify(run_dir).ok


def test_failure_reason_names_the_fault(nbdir, tmp_path):
    """The manifest says why: the exception raised in the phase."""
    write_phase(nbdir, "01_faulty", [FAULTS["raises"]])
    with pytest.raises(PhaseFailedError, match="ValueError: planted fault"):
        _run(nbdir, tmp_path)


def test_phase_with_zero_checks_or_a_failed_check_is_failed(nbdir, tmp_path):
    """Zero checks run is a failure, and so is a failed check."""
    write_phase(nbdir, "01_nochecks", ['phase.record("x", 1)'])
    with pytest.raises(PhaseFailedError) as caught:
        _run(nbdir, tmp_path, phases=["01"])
    assert "zero checks" in caught.value.reason
    write_phase(nbdir, "01_nochecks", ['phase.check("must hold", False, "it did not")'])
    with pytest.raises(PhaseFailedError, match="must hold"):
        runner.resume(caught.value.result.run_dir)


def test_cell_timeout_fails_the_phase(nbdir, tmp_path):
    """A cell running past the cell timeout fails the phase (papermill shows no banner)."""
    write_phase(nbdir, "01_slow", ['phase.check("c", True)', "import time\ntime.sleep(30)"])
    with pytest.raises(PhaseFailedError, match="timeout"):
        _run(nbdir, tmp_path, phases=["01_slow"], cell_timeout=1)


def test_undeclared_parameter_is_an_error_naming_phase_and_key(nbdir, tmp_path):
    """A phases.<name> parameter the notebook does not declare stops the run before it starts."""
    with pytest.raises(ParamsError) as caught:
        _run(nbdir, tmp_path, overrides={"phases": {"00_first": {"bogus": 1}}})
    assert caught.value.key == "bogus" and "00_first" in str(caught.value)
    assert not (tmp_path / "out" / "local").exists() or not any(
        (tmp_path / "out" / "local").iterdir()
    )


def test_declared_phase_parameter_reaches_the_notebook(tmp_path):
    """A params phases.<name> value is injected into the phase and recorded (secrets redacted)."""
    folder = tmp_path / "nb"
    write_phase(
        folder,
        "00_p",
        [
            'phase.check("limit", limit == 5)',
            "phase.record('hook', phase.params.alerts.webhook_url)",
        ],
        params="limit = 0\n",
    )
    secret = "http://127.0.0.1:9/hook-s3cr3t-value"
    result = runner.run(
        "local",
        notebooks_dir=folder,
        out_root=tmp_path / "out",
        overrides={"phases": {"00_p": {"limit": 5}}, "alerts.webhook_url": secret},
    )
    rec = result.records[0]
    assert rec["parameters"]["limit"] == 5 and rec["status"] == "SUCCEEDED"
    assert manifest.find_secrets(result.run_dir, {secret}) == []
    assert (
        manifest.load(result.run_dir)["header"]["overrides"]["alerts.webhook_url"]
        == manifest.REDACTED
    )


def test_rollback_runs_with_the_runs_backups_and_extends_the_chain(tmp_path):
    """rollback passes the 02 phase's recorded backups to 90_rollback, appended to the chain."""
    folder = tmp_path / "nb"
    write_phase(
        folder,
        "02_cleanup",
        [
            'phase.record("backups", [{"table": "d.t", "backup": "d.t_backup"}])',
            'phase.check("backed up", True)',
        ],
    )
    write_phase(
        folder,
        "90_rollback",
        [
            'phase.record("restored", [dict(b, rows=1, verified=True) for b in backups])',
            'phase.check("restored", len(backups) == 1)',
        ],
        params="backups = []\n",
    )
    result = runner.run("local", notebooks_dir=folder, out_root=tmp_path / "out")
    assert [r["phase"] for r in result.records] == ["02_cleanup"]  # 90 is not in the chain
    rolled = runner.rollback(result.run_dir)
    rec = rolled.records[0]
    assert rec["kind"] == "rollback" and rec["results"]["restored"][0]["backup"] == "d.t_backup"
    assert runner.verify(result.run_dir).ok
    assert "d.t restored from d.t_backup" in (result.run_dir / "deployment_log.md").read_text()


def test_lock_refuses_a_second_run_while_held(nbdir, tmp_path):
    """One writer per environment: a live holder's lock stops a second run."""
    path = tmp_path / "out" / "local" / ".lock"
    lock.acquire(path, "other-run")
    with pytest.raises(LockHeldError) as caught:
        _run(nbdir, tmp_path)
    assert caught.value.run_id == "other-run"


def test_stale_lock_is_reported_and_broken_on_request(nbdir, tmp_path):
    """A lock whose process is gone is named stale, and broken only when asked."""
    path = tmp_path / "out" / "local" / ".lock"
    lock.acquire(path, "dead-run")
    held = json.loads(path.read_text())
    path.write_text(json.dumps(dict(held, pid=2**22 + 7)))  # no such process
    assert not os.path.exists(f"/proc/{2**22 + 7}")
    with pytest.raises(LockHeldError, match="stale"):
        _run(nbdir, tmp_path)
    result = _run(nbdir, tmp_path, break_stale_lock=True)
    assert result.ok and not path.exists()


def test_run_writes_notebooks_log_report_and_records_results(nbdir, tmp_path):
    """A run archives the executed notebook, its results, a filled log and an HTML report."""
    result = _run(nbdir, tmp_path)
    run_dir = result.run_dir
    rec = result.records[0]
    assert rec["results"] == {"n": 3} and rec["checks"][0]["check"] == "first"
    nb = nbformat.read(run_dir / "00_first.ipynb", as_version=4)
    assert nb.metadata.papermill.parameters["run_dir"] == str(run_dir)
    log_text = (run_dir / "deployment_log.md").read_text()
    assert "[Name]" not in log_text and "YYYY" not in log_text and "X records" not in log_text
    assert "00_first" in (run_dir / "report.html").read_text()
