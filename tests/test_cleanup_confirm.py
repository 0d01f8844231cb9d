"""Confirmation tokens bind the plan's content, environment and project, on both backends.

A token is `delete N rows from dataset.table (plan abc123)`; the plan id digests the stale rows'
keys in SQL. These cases run on DuckDB and on BigQuery (bqemulator) through `warehouse`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from runbook_lib.config import DEFAULT_DATASETS
from runbook_lib.errors import ConfirmationRequired, DeleteContentMismatchError
from runbook_lib.platform import cleanup
from runbook_lib.platform.schema import ALL_TABLES, Tables
from runbook_lib.run.params import load_params
from runbook_lib.run.phase import OVERRIDES_ENV, Phase
from tests.conftest import WarehouseCase
from tests.test_cleanup import CUTOFF, TODAY, days, upcg_rows, utcg_rows

STALE_DAY = dt.date(2025, 3, 20)


def _load(case: WarehouseCase) -> WarehouseCase:
    """UPCG: 3 stale rows, 8 kept; UTCG: 2 stale, 5 kept."""
    case.wh.load_dataframe(case.tables.upcg, upcg_rows(days(dt.date(2025, 3, 31), 11)))
    case.wh.load_dataframe(case.tables.utcg, utcg_rows(days(dt.date(2025, 4, 1), 7)))
    return case


@pytest.fixture
def loaded(warehouse) -> WarehouseCase:
    return _load(warehouse)


def plan_of(case: WarehouseCase, env: str = "local") -> cleanup.CleanupPlan:
    return cleanup.plan_cleanup(case.wh, case.tables, TODAY, 7, 0.9, env=env)


def swap_one_stale_row(case: WarehouseCase) -> None:
    """Remove one stale UPCG row and add another stale one: the stale count stays 3."""
    wh, upcg = case.wh, case.tables.upcg
    wh.execute(f"DELETE FROM {upcg.sql} WHERE player_lookup = 'p0'")
    wh.load_dataframe(upcg, upcg_rows([STALE_DAY], tag="swapped"))


def stale(case: WarehouseCase) -> int:
    return case.wh.row_count(case.tables.upcg, cleanup.STALE, {"cutoff": CUTOFF})


def other_project(case: WarehouseCase, request, tmp_path) -> WarehouseCase:
    """Return a warehouse of the same backend in another project, holding the same rows."""
    if case.backend == "duckdb":
        from runbook_lib.warehouse.duckdb_backend import DuckDBWarehouse

        wh = DuckDBWarehouse("nba-props-other", tmp_path / "other")
    else:
        from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse
        from runbook_lib.warehouse.emulator import client_for

        project = f"emu-{uuid.uuid4().hex[:16]}"
        endpoint = request.getfixturevalue("bq_emulator")
        wh = BigQueryWarehouse(project, client=client_for(endpoint, project))
    return _created(wh)


def _created(wh) -> WarehouseCase:
    """Return `wh` with every declared table created and the upcoming tables loaded."""
    tables = Tables(wh.project, DEFAULT_DATASETS)
    with wh.session():
        for schema in ALL_TABLES:
            wh.ensure_table(tables.id(schema), schema)
    return _load(WarehouseCase(wh, tables))


# -- the one line -----------------------------------------------------------------------------


def test_the_line_joins_one_token_per_stale_table_with_its_plan_id(loaded):
    plan = plan_of(loaded)
    line = cleanup.confirmation_line(plan)
    assert line == "; ".join(plan.tokens.values())
    assert cleanup.split_line(f"  {line}  ") == list(plan.tokens.values())
    upcg = plan.preview(loaded.tables.upcg)
    assert upcg.token == (
        f"delete 3 rows from nba_analytics.upcoming_player_game_context (plan {upcg.plan_id})"
    )
    assert len(upcg.plan_id) == 6 and plan_of(loaded).tokens == plan.tokens  # deterministic


# -- the same-count swap ----------------------------------------------------------------------


@pytest.mark.safeguard
def test_a_same_count_swap_refuses_the_previewed_token_with_the_fresh_line(loaded):
    old = plan_of(loaded)
    swap_one_stale_row(loaded)
    new = plan_of(loaded)
    assert new.total_stale == old.total_stale
    with pytest.raises(ConfirmationRequired) as err:
        cleanup.check_confirmation(new, cleanup.confirmation_line(old))
    message = str(err.value)
    upcg_old, upcg_new = old.preview(loaded.tables.upcg), new.preview(loaded.tables.upcg)
    assert (
        f"still 3 stale rows but plan {upcg_old.plan_id} is not plan {upcg_new.plan_id}" in message
    )
    assert "stale rows changed since that preview" in message
    assert err.value.expected_token == cleanup.confirmation_line(new)
    cleanup.check_confirmation(new, cleanup.confirmation_line(new))


@pytest.mark.safeguard
def test_a_same_count_swap_after_the_plan_deletes_nothing(loaded):
    plan = plan_of(loaded)
    swap_one_stale_row(loaded)
    before = {t.short: loaded.wh.row_count(t) for t in cleanup.upcoming_tables(loaded.tables)}
    with pytest.raises(DeleteContentMismatchError):
        cleanup.apply_cleanup(loaded.wh, loaded.tables, plan, confirm=plan.tokens, run_id="swap")
    after = {t.short: loaded.wh.row_count(t) for t in cleanup.upcoming_tables(loaded.tables)}
    assert after == before and stale(loaded) == 3
    assert cleanup.list_backups(loaded.wh, loaded.tables)[loaded.tables.upcg] == []


# -- another environment or project -----------------------------------------------------------


def test_a_token_from_another_environment_is_refused(loaded):
    staging = plan_of(loaded, env="staging")
    local = plan_of(loaded, env="local")
    assert staging.tokens != local.tokens
    with pytest.raises(ConfirmationRequired) as err:
        cleanup.check_confirmation(local, cleanup.confirmation_line(staging))
    assert "another environment or project (this is local" in str(err.value)
    assert stale(loaded) == 3


def test_a_token_from_another_project_is_refused(loaded, request, tmp_path):
    other = plan_of(other_project(loaded, request, tmp_path))
    here = plan_of(loaded)
    assert [p.stale_rows for p in other.previews] == [p.stale_rows for p in here.previews]
    with pytest.raises(ConfirmationRequired) as err:
        cleanup.apply_cleanup(
            loaded.wh, loaded.tables, here, confirm=cleanup.confirmation_line(other), run_id="x"
        )
    assert f"project {loaded.wh.project}" in str(err.value)
    assert stale(loaded) == 3


# -- where the token comes from ---------------------------------------------------------------


def test_auto_is_the_previewed_plan_only_on_local(loaded):
    plan = plan_of(loaded)
    tokens = list(plan.tokens.values())
    assert cleanup.resolve_confirmation(plan, "auto", cleanup.PARAMS_FILE, True) == tokens
    with pytest.raises(ConfirmationRequired, match="'auto' is accepted only on local"):
        cleanup.resolve_confirmation(plan, "auto", cleanup.COMMAND_LINE, False)


def _staging_like(tmp_path, project: str, confirm: str) -> Phase:
    """Return phase 02 of a BigQuery env `stagingx` whose params file (in tmp_path/params)
    holds a confirm token."""
    folder = tmp_path / "params"
    folder.mkdir()
    text = {
        "env": "stagingx",
        "backend": "bigquery",
        "project": project,
        "today": TODAY.isoformat(),
        "cleanup": {"dry_run": False, "confirm": confirm},
        "alerts": {"no_channel": True},
        "phases": {"02_data_cleanup": {"confirm": confirm}},
    }
    (folder / "stagingx.yaml").write_text(json.dumps(text))  # JSON is YAML
    params = load_params("stagingx", params_dir=folder)
    return Phase("02_data_cleanup", params, tmp_path / "run", "run-1")


@pytest.mark.safeguard
def test_outside_local_a_params_file_token_is_refused_and_the_command_line_one_accepted(
    bq_wh, tmp_path, monkeypatch
):
    case = _created(bq_wh)
    plan = plan_of(case, env="stagingx")
    line = cleanup.confirmation_line(plan)
    phase = _staging_like(tmp_path, bq_wh.project, line)
    assert not phase.params.is_local
    assert phase.parameter_source("confirm") == cleanup.PARAMS_FILE
    with pytest.raises(ConfirmationRequired) as err:
        cleanup.resolve_confirmation(plan, line, phase.parameter_source("confirm"), False)
    message = str(err.value)
    assert "on stagingx a confirmation from the params file is not accepted" in message
    assert f"--set phases.02_data_cleanup.confirm='{line}'" in message
    assert stale(case) == 3
    # The same line given with --set (the runner hands overrides to the kernel) is accepted.
    monkeypatch.setenv(OVERRIDES_ENV, json.dumps({"phases.02_data_cleanup.confirm": line}))
    assert phase.parameter_source("confirm") == cleanup.COMMAND_LINE
    tokens = cleanup.resolve_confirmation(plan, line, phase.parameter_source("confirm"), False)
    result = cleanup.apply_cleanup(bq_wh, case.tables, plan, confirm=tokens, run_id="cl1")
    assert result.total_deleted == 5 and stale(case) == 0


def test_cli_refuses_cleanup_confirm_from_a_non_local_params_file(
    bq_wh, bq_emulator, tmp_path, monkeypatch, capsys
):
    """`runbook cleanup` on a BigQuery env (the emulator) refuses the file's token, exit 2."""
    from runbook_lib import paths
    from runbook_lib.cli import main
    from runbook_lib.warehouse import EMULATOR_ENV

    case = _created(bq_wh)
    line = cleanup.confirmation_line(plan_of(case, env="stagingx"))
    _staging_like(tmp_path, bq_wh.project, line)
    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path / "params")
    monkeypatch.setenv(EMULATOR_ENV, bq_emulator)
    assert main(["cleanup", "--env", "stagingx"]) == 2
    err = capsys.readouterr().err
    assert "on stagingx a confirmation from the params file is not accepted" in err
    assert "--confirm" in err and stale(case) == 3
    assert main(["cleanup", "--env", "stagingx", "--confirm", line, "--run-id", "cli2"]) == 0
    assert "deleted 5 rows (previewed 5)" in capsys.readouterr().out and stale(case) == 0


# -- the phase notebook, run by the runner ------------------------------------------------------


@pytest.mark.safeguard
def test_phase_02_refuses_a_previewed_line_after_a_same_count_swap(
    seeded_wh, local_params, tmp_path
):
    """`runbook run --phases 02 --set phases.02_data_cleanup.confirm=<old line>` fails, deletes nothing."""
    from runbook_lib.errors import PhaseFailedError
    from runbook_lib.run import manifest, runner

    case = WarehouseCase(seeded_wh, local_params.tables)
    old = plan_of(case)
    # One stale UPCG row goes, another comes: the preview's counts are unchanged.
    upcg = case.tables.upcg
    gone = seeded_wh.query(
        f"SELECT player_lookup, game_id FROM {upcg.sql} WHERE {cleanup.STALE} LIMIT 1",
        {"cutoff": CUTOFF},
    ).iloc[0]
    seeded_wh.execute(
        f"DELETE FROM {upcg.sql} WHERE player_lookup = @p AND game_id = @g",
        {"p": gone["player_lookup"], "g": gone["game_id"]},
    )
    seeded_wh.load_dataframe(upcg, upcg_rows([STALE_DAY], tag="swapped"))
    new = plan_of(case)
    assert new.total_stale == old.total_stale and new.tokens != old.tokens
    overrides = {
        "warehouse_dir": str(local_params.warehouse_path),
        "today": TODAY.isoformat(),
        "phases.02_data_cleanup.confirm": cleanup.confirmation_line(old),
    }
    with pytest.raises(PhaseFailedError) as err:
        runner.run("local", phases=["02"], out_root=tmp_path / "out", overrides=overrides)
    run_dir = err.value.result.run_dir
    assert "is refused" in err.value.result.failed["reason"]
    assert plan_of(case).tokens == new.tokens  # nothing deleted, nothing backed up
    assert cleanup.list_backups(seeded_wh, case.tables)[upcg] == []
    header = manifest.load(run_dir)["header"]
    assert header["overrides"]["phases.02_data_cleanup.confirm"] == cleanup.confirmation_line(old)
    # The fresh line, typed on the command line, is accepted.
    overrides["phases.02_data_cleanup.confirm"] = cleanup.confirmation_line(new)
    result = runner.run("local", phases=["02"], out_root=tmp_path / "out", overrides=overrides)
    assert result.ok and plan_of(case).total_stale == 0
