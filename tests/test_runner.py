"""The runner against real kernels: small phase notebooks, faults, resume, rollback, lock."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from runbook_lib import cli, paths, secrets
from runbook_lib.errors import (
    EnvironmentMismatchError,
    LockHeldError,
    ParamsError,
    PhaseFailedError,
    RunbookError,
)
from runbook_lib.run import lock, manifest, phases, runner
from runbook_lib.run.params import load_params
from tests.phase_notebooks import FAULTS, write_phase
from tests.test_crashes import forkservers_of, kernels_of

OK = ['phase.check("first", True, "fine")', 'phase.record("n", 3)']


@pytest.fixture(autouse=True)
def _own_root(tmp_path, monkeypatch):
    """Resolve the local warehouse (where each run's head is anchored) under tmp_path."""
    monkeypatch.setattr(paths, "ROOT", tmp_path)


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
    assert not kernels_of(os.getpid())  # 01's and the kernel started for 02 are stopped

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
    assert not [p for p in result.run_dir.rglob("*") if p.is_file() and secret in p.read_text()]
    assert (
        manifest.load(result.run_dir)["header"]["overrides"]["alerts.webhook_url"]
        == secrets.REDACTED
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
        params="backups = []\noverwrite = False\n",
    )
    result = runner.run("local", notebooks_dir=folder, out_root=tmp_path / "out")
    assert [r["phase"] for r in result.records] == ["02_cleanup"]  # 90 is not in the chain
    rolled = runner.rollback(result.run_dir)
    rec = rolled.records[0]
    assert rec["kind"] == "rollback" and rec["results"]["restored"][0]["backup"] == "d.t_backup"
    assert runner.verify(result.run_dir).ok
    assert "d.t restored from d.t_backup" in (result.run_dir / "deployment_log.md").read_text()
    kinds = [r.get("kind") for r in manifest.load(result.run_dir)["records"]]
    # rollback reopens the sealed run, then re-archives it
    assert kinds == ["phase", "archive", "reopen", "rollback", "archive"]


def test_lock_refuses_a_second_run_while_held(nbdir, tmp_path):
    """One writer per warehouse: a live holder's lock stops a second run before it writes."""
    write_phase(nbdir, "01_second", OK)  # two phases: the run starts its fork server early
    params = load_params("local")
    held = lock.acquire(params, "other-run")
    try:
        with pytest.raises(LockHeldError) as caught:
            _run(nbdir, tmp_path)
    finally:
        lock.release(params, held)
    assert caught.value.run_id == "other-run" and caught.value.lock_id == held["lock_id"]
    assert not (tmp_path / "out").exists()
    assert not kernels_of(os.getpid()) and not forkservers_of(os.getpid())  # both stopped


def test_stale_lock_is_reported_and_broken_on_request(nbdir, tmp_path):
    """A lock whose process is gone is named stale, and broken only when asked."""
    params = load_params("local")
    held = lock.acquire(params, "dead-run")
    path = lock.lock_file(Path(lock.warehouse_identity(params).removeprefix("duckdb:")))
    path.write_text(json.dumps(dict(held, pid=2**22 + 7)))  # no such process
    assert not os.path.exists(f"/proc/{2**22 + 7}")
    with pytest.raises(LockHeldError, match="stale"):
        _run(nbdir, tmp_path)
    result = _run(nbdir, tmp_path, break_stale_lock=True)
    assert result.ok and lock.holder(params) is None


def test_a_phase_kernel_recognises_its_runs_lock_and_refuses_another(tmp_path):
    """The kernel carries the run id: the phase's warehouse is its own run's; another's refused."""
    folder = tmp_path / "nb"
    write_phase(folder, "00_wh", ['phase.check("wh", phase.wh is not None)'])
    assert _run(folder, tmp_path).ok
    params = load_params("local")
    held = lock.acquire(params, "someone-else")
    try:
        with pytest.raises(LockHeldError):
            _run(folder, tmp_path)
    finally:
        lock.release(params, held)


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
    assert not kernels_of(os.getpid())  # every phase's kernel is gone when the run returns


def test_verify_fails_after_the_deployment_log_or_a_results_file_is_edited(nbdir, tmp_path):
    """The log, the report and the results are hashed too; verify names the changed file."""
    run_dir = _run(nbdir, tmp_path).run_dir
    assert runner.verify(run_dir).ok
    results = run_dir / "results" / "00_first.json"
    results.write_text(results.read_text().replace('"n": 3', '"n": 4'))
    first = runner.verify(run_dir).first
    assert first.startswith("file results/00_first.json of record") and "changed" in first
    (run_dir / "report.html").unlink()
    assert any(p.startswith("file report.html") for p in runner.verify(run_dir).problems)


def _declares(folder, params: str):
    return write_phase(folder, "00_first", ['phase.check("c", True)'], params=params)


def test_mistyped_phase_parameter_is_refused_naming_type_and_quoting(tmp_path):
    """`confirm=yes` reaches the phase as bool; refuse it with the quoted form to type instead."""
    nb = _declares(tmp_path, 'confirm = "auto"\nlimit = 0\nratio = 0.5\nbackups = []\n')
    with pytest.raises(ParamsError) as caught:
        phases.check_parameters(nb, {"confirm": True})
    assert caught.value.key == "phases.00_first.confirm"
    assert "declares confirm as str" in str(caught.value) and "bool True" in str(caught.value)
    assert "--set phases.00_first.confirm=\"'true'\"" in str(caught.value)
    for wrong in ({"limit": "5"}, {"limit": True}, {"ratio": "x"}, {"backups": "d.t"}):
        with pytest.raises(ParamsError, match="declares"):
            phases.check_parameters(nb, wrong)
    phases.check_parameters(nb, {"confirm": "yes", "limit": 5, "ratio": 1, "backups": []})


def test_annotated_or_none_default_parameter_types(tmp_path):
    """An annotation wins over the default; a None default takes any value."""
    nb = _declares(tmp_path, "days: int = None\ndry_run = None\n")
    phases.check_parameters(nb, {"days": 3, "dry_run": "anything"})
    with pytest.raises(ParamsError, match="declares days as int"):
        phases.check_parameters(nb, {"days": "3"})


def test_mistyped_parameter_stops_the_run_before_it_starts(nbdir, tmp_path):
    """The type check runs before the run dir or the lock exist."""
    _declares(nbdir, 'confirm = "auto"\n')
    write_phase(nbdir, "01_second", OK)  # two phases: the run starts its fork server early
    with pytest.raises(ParamsError, match="declares confirm as str"):
        _run(nbdir, tmp_path, overrides={"phases.00_first.confirm": True})
    assert not (tmp_path / "out").exists()
    assert not kernels_of(os.getpid()) and not forkservers_of(os.getpid())  # both stopped


def _cli(capsys, *argv) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def test_bad_set_key_is_blamed_on_the_set_and_quoting_shows_what_was_typed(capsys):
    """`--set foo=1` is reported as coming from the --set, not from params/local.yaml."""
    code, err = _cli(capsys, "run", "--env", "local", "--set", "foo=1")
    assert code == 2 and err.startswith("error: --set foo=1: foo: unknown key")
    code, err = _cli(capsys, "run", "--env", "local", "--set", "phases.02_data_cleanup.confirm=yes")
    assert code == 2 and "--set phases.02_data_cleanup.confirm=\"'yes'\"" in err


@pytest.mark.parametrize("second", ["a=2", "a.b=2"])
def test_the_same_set_key_twice_is_an_error(capsys, second):
    """`--set a=1 --set a=2` (or a and a.b) is ambiguous, so it is refused."""
    code, err = _cli(capsys, "run", "--env", "local", "--set", "a=1", "--set", second)
    assert code == 2 and f"is set twice (--set a=1 and --set {second})" in err


@pytest.fixture
def cloud(tmp_path, monkeypatch):
    """A BigQuery environment `cloud` (project runbook-test-proj) in a params folder of its own."""
    folder = tmp_path / "params"
    folder.mkdir()
    (folder / "cloud.yaml").write_text(
        "env: cloud\nbackend: bigquery\nproject: runbook-test-proj\nalerts:\n  no_channel: true\n"
    )
    monkeypatch.setattr(paths, "PARAMS_DIR", folder)
    for var in (
        "GOOGLE_CLOUD_PROJECT",
        "GCLOUD_PROJECT",
        "CLOUDSDK_CONFIG",
        "CLOUDSDK_CORE_PROJECT",
    ):
        monkeypatch.delenv(var, raising=False)
    return "cloud"


def _user_credentials(tmp_path, monkeypatch, project: str) -> None:
    """Point ADC at an authorized-user file (read offline) and name `project`."""
    path = tmp_path / "adc.json"
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "runbook-test.apps.googleusercontent.com",
                "client_secret": "not-a-secret",
                "refresh_token": "not-a-token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)


@pytest.mark.parametrize("how", ["missing key file", "nothing configured"])
def test_bigquery_run_without_credentials_stops_before_writing(
    cloud, nbdir, tmp_path, monkeypatch, capsys, how
):
    """No Google credentials: exit 1 naming gcloud and GOOGLE_APPLICATION_CREDENTIALS; no files."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if how == "missing key file":
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    else:
        monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with pytest.raises(RunbookError) as caught:
        runner.run(cloud, notebooks_dir=nbdir, out_root=tmp_path / "out")
    text = str(caught.value)
    assert "gcloud auth application-default login" in text
    assert "GOOGLE_APPLICATION_CREDENTIALS" in text
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path / "out")
    code, err = _cli(capsys, "run", "--env", cloud)
    assert code == 1 and "no Google credentials" in err and not (tmp_path / "out").exists()


def test_credentials_of_another_project_are_refused_before_writing(
    cloud, nbdir, tmp_path, monkeypatch
):
    """Credentials naming another project mean the wrong environment: refused, nothing written."""
    _user_credentials(tmp_path, monkeypatch, "some-other-proj")
    with pytest.raises(EnvironmentMismatchError) as caught:
        runner.run(cloud, notebooks_dir=nbdir, out_root=tmp_path / "out")
    assert (caught.value.expected, caught.value.actual) == ("runbook-test-proj", "some-other-proj")
    assert not (tmp_path / "out").exists()


def test_outside_local_a_later_phase_needs_the_preflight_phase(cloud, nbdir, tmp_path):
    """`--phases 01` on a BigQuery env would skip pre-flight: refused, nothing written."""
    write_phase(nbdir, "01_destructive", ['phase.check("c", True)'])
    with pytest.raises(ParamsError, match="must include 00_preflight"):
        runner.run(cloud, phases=["01"], notebooks_dir=nbdir, out_root=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    params = load_params(cloud)
    phases.require_preflight(params, ["01_destructive"], {"00_first"}, "resume")  # 00 passed
    with pytest.raises(ParamsError):
        phases.require_preflight(params, ["01_destructive"], set(), "resume")


def test_outside_local_resume_after_a_succeeded_preflight_runs(
    cloud, nbdir, tmp_path, monkeypatch, bq_emulator
):
    """A failed BigQuery-env run resumes from its failed phase: 00 SUCCEEDED in that run.

    Its lock is a table in the project's orchestration dataset (on bqemulator here), released
    when the run and the resume end; its heads are anchored in runbook_runs there, and resume
    checks them.
    """
    from runbook_lib.warehouse import EMULATOR_ENV

    _user_credentials(tmp_path, monkeypatch, "runbook-test-proj")
    monkeypatch.setenv(EMULATOR_ENV, bq_emulator)
    write_phase(nbdir, "01_faulty", [FAULTS["raises"]])
    with pytest.raises(PhaseFailedError) as caught:
        runner.run(cloud, notebooks_dir=nbdir, out_root=tmp_path / "out")
    write_phase(nbdir, "01_faulty", ['phase.check("fixed", True)'])
    result = runner.resume(caught.value.result.run_dir)
    assert result.ok and [r["phase"] for r in result.records] == ["01_faulty"]
    verified = runner.verify(result.run_dir)
    assert verified.ok and verified.anchor.rows == 2
    assert verified.anchor.where == "runbook-test-proj.nba_orchestration.runbook_runs"
    assert lock.holder(load_params(cloud)) is None


def test_resume_rerun_should_run_a_succeeded_phase_again_as_a_new_attempt(nbdir, tmp_path):
    """Phase 06's later windows need a rerun on the same run, a day after the deployment."""
    write_phase(nbdir, "06_later", ['phase.check("later", True, "evidence")'])
    result = _run(nbdir, tmp_path)
    again = runner.resume(result.run_dir, rerun=["06"])
    assert [r["phase"] for r in again.records] == ["06_later"]
    assert (result.run_dir / "06_later.attempt2.ipynb").exists()
    assert runner.verify(result.run_dir).ok
    with pytest.raises(ParamsError, match="names no phase"):
        runner.resume(result.run_dir, rerun=["07"])
