"""The promotion gate: prod runs only a commit a VERIFIED staging run deployed, or says why not.

Staging-shaped params on the embedded warehouse: `staging` and `prod` params files that differ
from local only in their name, their warehouse and prod's `promotion.gated_by: staging`. The
code deployed is a git repository of the test's own, so a second commit is real.
"""

from __future__ import annotations

import pytest

from runbook_lib.errors import ParamsError, PhaseFailedError, PromotionRefusedError
from runbook_lib.run import deployment_log, manifest, promotion, runner
from runbook_lib.run.params import load_params
from tests.code_repo import commit, own_repo
from tests.phase_notebooks import FAULTS, write_phase

OK = ['phase.check("fine", True, "evidence")']


@pytest.fixture
def envs(tmp_params_dir, tmp_path, monkeypatch):
    """staging and prod params (DuckDB warehouses of their own), a repo, small notebooks."""
    local = (tmp_params_dir / "local.yaml").read_text()
    for env, extra in (("staging", ""), ("prod", "promotion:\n  gated_by: staging\n")):
        text = local.replace("env: local", f"env: {env}")
        text = text.replace(str(tmp_path / "warehouse"), str(tmp_path / f"wh-{env}"))
        (tmp_params_dir / f"{env}.yaml").write_text(text + extra)
    repo = own_repo(tmp_path, monkeypatch)
    write_phase(tmp_path / "nb", "00_first", OK)
    write_phase(tmp_path / "nb", "01_deploy", OK)
    return repo


def _run(tmp_path, env, **kw):
    return runner.run(env, notebooks_dir=tmp_path / "nb", out_root=tmp_path / "out", **kw)


def test_prod_is_refused_without_a_staging_run_then_accepted_after_one(envs, tmp_path):
    """No staging run of the commit: refused before anything is written; after one: it runs."""
    head = commit(envs, "v1")
    with pytest.raises(PromotionRefusedError) as caught:
        _run(tmp_path, "prod")
    assert "no staging run at all" in str(caught.value)
    assert "promotion.skip_staging_reason" in str(caught.value)
    assert not (tmp_path / "out" / "prod").exists()
    staged = _run(tmp_path, "staging")
    result = _run(tmp_path, "prod")
    gate = manifest.load(result.run_dir)["header"]["promotion"]
    assert (gate["state"], gate["run_id"], gate["commit"]) == ("passed", staged.run_id, head)
    assert gate["at"] == manifest.load(staged.run_dir)["header"]["created_at"]
    log = (result.run_dir / "deployment_log.md").read_text()
    assert f"staging run {staged.run_id} of commit {head[:12]}" in log


def test_a_staging_run_of_another_commit_does_not_count(envs, tmp_path):
    """The gate is per commit: staging ran v1, prod of v2 is refused and says so."""
    commit(envs, "v1")
    _run(tmp_path, "staging")
    commit(envs, "v2")
    with pytest.raises(PromotionRefusedError, match=r"1 run\(s\) of other commits"):
        _run(tmp_path, "prod")


def test_a_failed_or_tampered_staging_run_does_not_count(envs, tmp_path):
    """Only a run that verifies with every phase SUCCEEDED opens the gate."""
    commit(envs, "v1")
    write_phase(tmp_path / "nb", "01_deploy", [FAULTS["raises"]])
    with pytest.raises(PhaseFailedError):
        _run(tmp_path, "staging")
    with pytest.raises(PromotionRefusedError, match="not every phase SUCCEEDED .01_deploy FAILED"):
        _run(tmp_path, "prod")
    write_phase(tmp_path / "nb", "01_deploy", OK)
    staged = _run(tmp_path, "staging")
    log = staged.run_dir / "deployment_log.md"
    log.write_text(log.read_text() + "edited\n")
    with pytest.raises(PromotionRefusedError, match="`runbook verify` says TAMPERED"):
        _run(tmp_path, "prod")


def test_a_rolled_back_staging_run_does_not_count(envs, tmp_path):
    """A staging run rolled back since is no evidence for prod, and no previous deployment."""
    commit(envs, "v1")
    write_phase(
        tmp_path / "nb",
        "02_cleanup",
        ['phase.record("backups", [{"table": "d.t", "backup": "d.t_backup"}])', *OK],
    )
    write_phase(tmp_path / "nb", "90_rollback", OK, params="backups = []\noverwrite = False\n")
    staged = _run(tmp_path, "staging")
    runner.rollback(staged.run_dir)
    with pytest.raises(PromotionRefusedError, match="it was rolled back"):
        _run(tmp_path, "prod")
    assert promotion.previous_deployment(tmp_path / "out" / "staging", None) is None


def test_partial_staging_run_does_not_count(envs, tmp_path):
    """A staging run of only some phases (the rest SKIPPED) is not a staging deployment."""
    commit(envs, "v1")
    _run(tmp_path, "staging", phases=["00"])
    with pytest.raises(PromotionRefusedError, match="01_deploy SKIPPED"):
        _run(tmp_path, "prod")


def test_skip_reason_opens_the_gate_and_is_recorded(envs, tmp_path):
    """The only way past is a reason: in the manifest header, phase 00's record and the log."""
    commit(envs, "v1")
    why = "staging project down for maintenance; approved by J. Doe, INC-42"
    result = _run(tmp_path, "prod", overrides={"promotion.skip_staging_reason": why})
    man = manifest.load(result.run_dir)
    assert man["header"]["promotion"]["state"] == "skipped"
    assert man["header"]["overrides"]["promotion.skip_staging_reason"] == why
    assert why in (result.run_dir / "deployment_log.md").read_text()
    assert why in deployment_log.render(result.run_dir)


def test_local_is_exempt_and_the_runs_code_is_recorded(envs, tmp_path):
    """local names no gating environment; every run records its commit and the previous one."""
    first = commit(envs, "v1")
    one = _run(tmp_path, "local")
    second = commit(envs, "v2")
    two = _run(tmp_path, "local")
    header = manifest.load(two.run_dir)["header"]
    assert header["promotion"]["state"] == "not gated"
    assert header["code"]["commit"] == second
    assert header["previous_deployment"] == {
        "run_id": one.run_id,
        "commit": first,
        "at": manifest.load(one.run_dir)["header"]["created_at"],
    }


def test_phase_00_shows_the_staging_run(envs, tmp_path):
    """Phase 00 of a prod run records the gate and checks it (promotion.recorded)."""
    commit(envs, "v1")
    write_phase(
        tmp_path / "nb",
        "00_first",
        [
            "from runbook_lib.run import phase_checks, promotion",
            'gate = phase.record("promotion", promotion.recorded(phase.run_dir))',
            "for check in phase_checks.promotion_checks(gate):\n    phase.check(*check)",
        ],
    )
    staged = _run(tmp_path, "staging")
    result = _run(tmp_path, "prod")
    rec = result.records[0]
    assert rec["results"]["promotion"]["run_id"] == staged.run_id
    assert rec["checks"][0]["check"] == "promotion gate" and rec["checks"][0]["ok"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"promotion.gated_by": "prod"}, "promotion"),
        ({"promotion.skip_staging_reason": "  "}, "promotion.skip_staging_reason"),
    ],
)
def test_gate_params_that_make_no_sense_are_refused(envs, overrides, key):
    """An environment gated by itself, or a blank skip reason, is bad input."""
    with pytest.raises(ParamsError) as caught:
        load_params("prod", overrides)
    assert caught.value.key == key


def test_shipped_prod_is_gated_by_staging_and_local_by_nothing():
    """The shipped params say which environment gates which."""
    assert load_params("prod").promotion.gated_by == "staging"
    assert load_params("staging").promotion.gated_by is None
    assert load_params("local").promotion.gated_by is None
    assert promotion.recorded("")["state"] == "standalone"
