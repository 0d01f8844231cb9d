"""The declared tables against production-shaped live ones: differences, plan, apply (issue 10.2)."""

from __future__ import annotations

import datetime as dt

import pytest

from runbook_lib.cli import main
from runbook_lib.config import DEFAULT_DATASETS, BackfillConfig
from runbook_lib.errors import ConfirmationRequired
from runbook_lib.platform import backfill, cleanup, schema_check
from runbook_lib.platform.schema import ALL_TABLES, BACKFILL_METADATA, CLEANUP_OPERATIONS, Tables
from runbook_lib.warehouse.schema import TableSchema, fields_of
from tests.test_atomic_publish import ORIGINAL_METADATA
from tests.test_backfill import D1, make_league, pcf_counts
from tests.test_cleanup import upcg_rows
from tests.test_cleanup_audit import README_AUDIT


@pytest.fixture
def production(bq_wh):
    """The emulator with production's shapes: the tracker's 8-column metadata, the README's
    6-column cleanup_operations, no PCF staging table; every other table as declared."""
    tables = Tables(bq_wh.project, DEFAULT_DATASETS)
    shaped = {BACKFILL_METADATA: ORIGINAL_METADATA, CLEANUP_OPERATIONS: README_AUDIT}
    for schema in ALL_TABLES:
        if schema.name == "player_composite_factors_staging":
            bq_wh.create_dataset(tables.id(schema).dataset)
            continue
        bq_wh.ensure_table(tables.id(schema), shaped.get(schema, schema))
    return bq_wh, tables


def test_plan_shows_each_difference_and_apply_only_adds(production, tmp_path):
    wh, tables = production
    found = schema_check.compare(wh, tables)
    by_what = {(d.table, d.column, d.what) for d in found}
    assert ("nba_precompute.player_composite_factors_staging", "-", "missing table") in by_what
    meta = "nba_orchestration.backfill_processing_metadata"
    assert {(meta, c, "missing column") for c in ("run_id", "context_source", "error")} <= by_what
    assert all(d.blocking for d in found if d.what.startswith("missing"))
    changes = schema_check.plan_changes(found)
    assert [c.action for c in changes].count("create table") == 1
    assert schema_check.unfixable(found) == []
    line = schema_check.confirmation_line("emulator", changes)
    with pytest.raises(ConfirmationRequired):
        schema_check.apply_changes(wh, tables, "emulator", changes, "apply everything")
    assert schema_check.compare(wh, tables) == found  # refused: nothing changed
    schema_check.apply_changes(wh, tables, "emulator", changes, line)
    after = schema_check.compare(wh, tables)
    assert not any(d.blocking for d in after), schema_check.as_frame(after)
    # Added as NULLABLE: the original columns keep their modes, nothing was dropped.
    live = {f.name: f for f in wh.live_schema(tables.backfill_metadata).fields}
    assert live["run_id"].mode == "NULLABLE" and live["analysis_date"].mode == "REQUIRED"
    _then_the_backfill_and_the_cleanup_write(wh, tables, tmp_path)


def _then_the_backfill_and_the_cleanup_write(wh, tables, tmp_path) -> None:
    make_league(wh, tables, {D1: 20}, {D1: 20})
    config = BackfillConfig(checkpoint_dir=str(tmp_path / "checkpoints"), workers=1)
    result = backfill.run_backfill(wh, tables, config, dt.date(2023, 3, 1), D1, D1)
    assert [str(o.status) for o in result.outcomes] == ["COMPLETE"]
    assert pcf_counts(wh, tables) == {str(D1): 20}
    wh.load_dataframe(tables.upcg, upcg_rows([dt.date(2025, 3, 1)]))
    plan = cleanup.plan_cleanup(wh, tables, dt.date(2025, 4, 10), 7, 0.9, env="emulator")
    done = cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="s1")
    assert done.status == "success"


def test_a_type_that_differs_blocks_and_is_never_retyped(production):
    wh, tables = production
    wh.drop_table(tables.pcf)
    retyped = TableSchema("precompute", "player_composite_factors",
                          fields_of("player_lookup STRING, game_date STRING"))  # fmt: skip
    wh.create_table(tables.pcf, retyped)
    found = schema_check.compare(wh, tables)
    [bad] = schema_check.unfixable(found)
    assert (bad.column, bad.what, bad.declared, bad.live) == ("game_date", "type", "DATE", "STRING")
    changes = schema_check.plan_changes(found)
    schema_check.apply_changes(
        wh, tables, "emulator", changes, schema_check.confirmation_line("emulator", changes)
    )
    assert schema_check.unfixable(schema_check.compare(wh, tables)) == [bad]


def test_schema_plan_on_the_seeded_local_warehouse_has_nothing_to_do(
    seeded_wh, tmp_params_dir, capsys
):
    assert main(["schema", "plan", "--env", "local"]) == 0
    assert "Nothing to create or add." in capsys.readouterr().out


def test_phase_00_refuses_an_incompatible_table_before_any_write(
    seeded_wh, tmp_params_dir, tmp_path, local_params
):
    """The tracker's 8-column metadata table in the warehouse: phase 00 FAILS naming the missing
    columns and the fix, and the run stops before any later phase writes."""
    from runbook_lib.errors import PhaseFailedError
    from runbook_lib.run import manifest, runner

    t = local_params.tables
    seeded_wh.drop_table(t.backfill_metadata)
    seeded_wh.create_table(t.backfill_metadata, ORIGINAL_METADATA)
    stale_before = seeded_wh.row_count(t.upcg)
    with pytest.raises(PhaseFailedError) as caught:
        runner.run("local", phases=["00", "02"], out_root=tmp_path / "out")
    assert "declared tables fit the live ones" in caught.value.reason
    records = manifest.latest_status(manifest.load(caught.value.result.run_dir))
    check = next(
        c for c in records["00_preflight"]["checks"] if c["check"].startswith("declared tables")
    )
    assert "backfill_processing_metadata.run_id: missing column" in check["detail"]
    assert "runbook schema plan --env local" in check["detail"]
    assert records["02_data_cleanup"]["status"] == "SKIPPED"
    assert seeded_wh.row_count(t.upcg) == stale_before
