"""Automated checks of phases 00/01 and the small steps the notebooks call."""

from __future__ import annotations

import gc
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook_lib.errors import ConfirmationRequired
from runbook_lib.platform import cleanup
from runbook_lib.run import (
    backfill_steps,
    checks,
    cleanup_phase,
    engine,
    phase_checks,
    rollback_phase,
)
from runbook_lib.run.forkserver import SOCKET_ENV
from tests.test_cleanup import plan_of, tables, wh  # noqa: F401 - fixtures


def _repo(path):
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "-c", "user.email=a@b", "-c", "user.name=a",
                    "commit", "-q", "--allow-empty", "-m", "init"], check=True)


def test_git_state_should_report_uncommitted_files(tmp_path):
    _repo(tmp_path)
    assert checks.git_state(tmp_path).clean
    (tmp_path / "new.py").write_text("x = 1\n")
    state = checks.git_state(tmp_path)
    assert not state.clean and state.dirty == ("?? new.py",)


def test_git_state_should_not_call_a_folder_without_git_clean(tmp_path):
    assert not checks.git_state(tmp_path).clean


def test_probe_access_should_fail_when_a_declared_table_is_missing(empty_wh, local_params):
    access = checks.probe_access(empty_wh, local_params.tables)
    assert access["ok"].all()
    empty_wh.drop_table(local_params.tables.pcf)
    access = checks.probe_access(empty_wh, local_params.tables)
    assert access.loc[access["object"] == "nba_precompute.player_composite_factors", "ok"].tolist() == [False]


def test_probe_access_should_refuse_a_dataset_in_another_location_than_the_params(bq_wh):
    from runbook_lib.platform.schema import ALL_TABLES, Tables
    from runbook_lib.run.params import load_params

    declared = Tables(bq_wh.project, load_params("staging").datasets)
    for schema in ALL_TABLES:
        bq_wh.ensure_table(declared.id(schema), schema)  # datasets created in US, as params say
    assert checks.probe_access(bq_wh, declared)["ok"].all()
    bq_wh.location = "EU"  # the params now say EU; the datasets are still in US
    access = checks.probe_access(bq_wh, declared)
    wrong = access[~access["ok"]]
    assert sorted(wrong["object"]) == sorted(declared.datasets.values())
    assert all("is in US, the params say EU" in kind for kind in wrong["kind"])


def test_byte_compile_should_count_every_module():
    assert checks.byte_compile() >= 20


def test_byte_compile_should_compile_again_a_module_changed_since_its_pyc(tmp_path, monkeypatch):
    """A .pyc vouches only for the source it was compiled from: the same size with another
    modification time, or the same time with another size, is compiled again and refused."""
    package = tmp_path / "probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = package / "mod.py"
    module.write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    try:
        assert checks.byte_compile("probe_pkg") == 2
        pyc = Path(importlib.util.cache_from_source(str(module)))
        compiled = module.stat().st_mtime
        module.write_text("x = (\n")  # the same size; a later time
        os.utime(module, (compiled + 10, compiled + 10))
        with pytest.raises(SyntaxError, match="mod.py"):
            checks.byte_compile("probe_pkg")
        module.write_text("x = 2\n")
        os.utime(module, (compiled + 20, compiled + 20))
        assert checks.byte_compile("probe_pkg") == 2
        module.write_text("x = (((\n")  # another size; the time the .pyc names
        os.utime(module, (compiled + 20, compiled + 20))
        assert pyc.read_bytes()[8:12] == int(compiled + 20).to_bytes(4, "little")
        with pytest.raises(SyntaxError, match="mod.py"):
            checks.byte_compile("probe_pkg")
    finally:
        sys.modules.pop("probe_pkg", None)


@pytest.fixture(params=["launched", "forked"])
def started_as(request, tmp_path, monkeypatch):
    """How the tests' pytest starts: launched, or forked from a fork server (as in a run's
    kernel, which finds the server through SOCKET_ENV; forkserver.py)."""
    if request.param == "forked":
        if not engine.can_fork():
            pytest.skip("needs fork and pidfd (Linux)")
        # The server's environment is the one the test body asks with (pytest names the
        # running phase of the test in PYTEST_CURRENT_TEST).
        during = {"PYTEST_CURRENT_TEST": f"{request.node.nodeid} (call)"}
        server = engine.fork_server(engine.kernel_name(), during, tmp_path, [["pytest"]])
        request.addfinalizer(server.stop)
        # A run's kernel asks once it runs, forked by the server: the server is up by then.
        deadline = time.monotonic() + 60
        while not Path(server.socket_path).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        monkeypatch.setenv(SOCKET_ENV, server.socket_path)
    return request.param


def test_run_tests_should_count_passes_and_failures(tmp_path, started_as):
    (tmp_path / "test_x.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    assert False\n")
    result = checks.run_tests(["test_x.py"], root=tmp_path)
    assert (result["passed"], result["failed"]) == (1, 1) and result["exit_code"] == 1
    assert result["started"] == started_as


WAIT_FOR_GO = """import pathlib, time
def test_waits_for_go():
    for _ in range(3000):  # 30 s, then fail: the parent never let it go
        if pathlib.Path("go").exists():
            return
        time.sleep(0.01)
    raise RuntimeError("never told to go")
"""


def test_started_tests_should_run_while_the_caller_works_and_report_when_collected(
    tmp_path, started_as
):
    """start_tests returns while pytest runs: the test only passes once the caller, after
    starting it, creates the file it waits for (a blocking start would leave it failing)."""
    (tmp_path / "test_go.py").write_text(WAIT_FOR_GO)
    started = checks.start_tests(["test_go.py"], root=tmp_path)
    assert "running" in repr(started)
    (tmp_path / "go").write_text("")
    result = started.result()
    assert (result["passed"], result["failed"], result["exit_code"]) == (1, 0, 0)
    assert started.result() == result and "exited 0" in repr(started)
    assert result["started"] == started_as


def test_started_tests_should_keep_their_files_in_a_folder_of_their_own_removed_after(
    tmp_path, started_as
):
    """Not pytest's numbered folders shared with every other pytest run (rotating them made
    phase 01 delete another run's files): the run's own folder, gone once collected."""
    (tmp_path / "test_where.py").write_text(
        "import pathlib\n"
        "def test_where(tmp_path):\n"
        "    (tmp_path / 'f').write_text('x')\n"
        "    pathlib.Path('where').write_text(str(tmp_path))\n"
    )
    started = checks.start_tests(["test_where.py"], root=tmp_path)
    assert started.result()["passed"] == 1
    used = Path((tmp_path / "where").read_text())
    assert used.is_relative_to(started._tmp) and not Path(started._tmp).exists()


def test_started_tests_dropped_uncollected_should_be_killed(tmp_path, started_as):
    """The kernel drops the run (a cell failed, the kernel is shut down): pytest does not
    go on running on its own."""
    (tmp_path / "test_go.py").write_text(WAIT_FOR_GO)
    started = checks.start_tests(["test_go.py"], root=tmp_path)
    proc, folder = started._proc, started._tmp
    assert started.started == started_as
    del started
    gc.collect()
    assert proc.returncode is not None and proc.returncode < 0  # killed, and reaped
    assert not Path(folder).exists()


def test_default_approvals_should_sign_automatically_only_on_local():
    assert checks.default_approvals(False, {}) == {}
    local = checks.default_approvals(True, {}, user="ops")
    assert set(local) == set(checks.SIGNOFF_ITEMS)
    assert all("automatic" in v for v in local.values())
    assert checks.default_approvals(True, {"x": "Ann"}) == {"x": "Ann"}


def test_rollback_function_should_pause_the_deployed_scheduler_job_on_gcp(gcloud, tmp_path):
    from runbook_lib.platform import deploy_plan
    from runbook_lib.platform.cloud_function.gcloud import GcloudRunner
    from runbook_lib.run.params import load_params
    from tests.test_deploy_plan import calls, plan_for

    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "main.py").write_text("# bundle\n")
    plan = plan_for(load_params("staging"), tmp_path / "bundle")
    deploy_plan.apply(plan, GcloudRunner(plan.project, plan.region))
    result = rollback_phase.rollback_function(load_params("staging"))
    assert result["ok"] and result["action"] == "pause"
    paused = [c for c in calls(gcloud) if c[:3] == ["scheduler", "jobs", "pause"]]
    assert paused and "nba-props-staging" in paused[0]


def test_rollback_function_should_touch_nothing_on_local(local_params):
    assert rollback_phase.rollback_function(local_params)["action"] == "none"


def _commit(path, name):
    (path / name).write_text(name)
    subprocess.run(["git", "-C", str(path), "add", name], check=True)
    subprocess.run(["git", "-C", str(path), "-c", "user.email=a@b", "-c", "user.name=a",
                    "commit", "-q", "-m", name], check=True)


def test_merge_should_fast_forward_a_branch_that_is_ahead(tmp_path):
    _repo(tmp_path)
    subprocess.run(["git", "-C", str(tmp_path), "checkout", "-q", "-b", "feature"], check=True)
    _commit(tmp_path, "safeguard.py")
    subprocess.run(["git", "-C", str(tmp_path), "checkout", "-q", "main"], check=True)
    merged = checks.merge_fast_forward("feature", root=tmp_path)
    assert merged["requested"] and merged["ok"] and (tmp_path / "safeguard.py").exists()


def test_merge_should_refuse_a_diverged_branch_and_change_nothing(tmp_path):
    _repo(tmp_path)
    subprocess.run(["git", "-C", str(tmp_path), "checkout", "-q", "-b", "feature"], check=True)
    _commit(tmp_path, "a.py")
    subprocess.run(["git", "-C", str(tmp_path), "checkout", "-q", "main"], check=True)
    _commit(tmp_path, "b.py")
    head = checks.git_state(tmp_path).head
    merged = checks.merge_fast_forward("feature", root=tmp_path)
    assert merged["requested"] and not merged["ok"]
    assert checks.git_state(tmp_path).head == head and not (tmp_path / "a.py").exists()


def test_merge_should_do_nothing_unless_asked():
    assert checks.merge_fast_forward("") == {
        "requested": False, "ok": True, "detail": "no merge requested: a reviewed PR merges"}


def test_confirmed_tokens_should_be_none_on_a_dry_run_and_the_resolved_line_otherwise(wh, tables):  # noqa: F811
    from runbook_lib.run.interact import Confirmation

    plan = plan_of(wh, tables)
    auto = Confirmation(cleanup.confirmation_line(plan), "auto", "notebook default")
    assert cleanup_phase.confirmed_tokens(plan, auto, dry_run=True, is_local=True) == []
    tokens = cleanup_phase.confirmed_tokens(plan, auto, dry_run=False, is_local=True)
    assert tokens == list(plan.tokens.values()) and len(tokens) == 2
    with pytest.raises(ConfirmationRequired):
        cleanup_phase.confirmed_tokens(plan, auto, dry_run=False, is_local=False)


def test_confirmation_summary_should_show_a_dash_when_nothing_was_given():
    summary = cleanup_phase.confirmation_summary({"how": "dry run", "given": ""})
    assert summary == "confirmation (dry run): -"


def test_nightly_outcomes_should_say_so_when_no_nightly_backfill_ran():
    assert backfill_steps.nightly_outcomes(None) == "no nightly backfill run by this phase"


def test_probe_permissions_on_local_should_hold_every_permission(empty_wh, local_params):
    permissions = checks.probe_permissions(empty_wh, local_params.tables)
    assert permissions["granted"].all() and len(permissions) > 20
    assert [c.ok for c in phase_checks.permission_checks(permissions)] == [True]


def test_probe_permissions_should_say_by_name_what_the_emulator_cannot_answer(bq_wh, monkeypatch):
    from runbook_lib.platform.schema import Tables
    from runbook_lib.run.params import load_params

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")
    declared = Tables(bq_wh.project, load_params("staging").datasets)
    permissions = checks.probe_permissions(bq_wh, declared)
    assert permissions["granted"].isna().all()
    notes = set(permissions["note"])
    assert any("tables.testIamPermissions" in n for n in notes)
    assert any("projects.testIamPermissions" in n for n in notes)
    [check] = phase_checks.permission_checks(permissions)
    assert check.ok and "not checked" in check.evidence


def test_probe_permissions_should_name_each_missing_permission(bq_wh, monkeypatch):
    # Fault: the account may read but not write. The emulator cannot refuse a permission, so the
    # server's answer is stood in for; everything around it is the real client and probe.
    from runbook_lib.platform.schema import Tables
    from runbook_lib.run.params import load_params

    monkeypatch.setattr(bq_wh, "can_create_jobs", lambda: False)
    monkeypatch.setattr(
        bq_wh.client,
        "test_iam_permissions",
        lambda table, perms: {"permissions": [p for p in perms if p != "bigquery.tables.updateData"]},
    )
    declared = Tables(bq_wh.project, load_params("staging").datasets)
    [check] = phase_checks.permission_checks(checks.probe_permissions(bq_wh, declared))
    assert not check.ok
    assert f"bigquery.jobs.create on {bq_wh.project}" in check.evidence
    assert "bigquery.tables.updateData on nba_precompute.player_composite_factors" in check.evidence
    assert "on nba_analytics.player_game_summary" not in check.evidence  # read only: not needed
