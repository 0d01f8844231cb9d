"""The stale-data cleanup: plan, confirmation, verified backup, exact delete, verification."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from runbook_lib import paths
from runbook_lib.cli import main
from runbook_lib.errors import (
    CleanupCapExceededError,
    ConfirmationRequired,
    DeleteCountMismatchError,
    TableExistsError,
)
from runbook_lib.platform import cleanup
from runbook_lib.platform.schema import Tables

TODAY = dt.date(2025, 4, 10)
CUTOFF = dt.date(2025, 4, 3)  # TODAY - 7 days


def upcg_rows(dates: list[dt.date], tag: str = "p") -> pd.DataFrame:
    """Return UPCG rows, one per date, with the required columns filled."""
    return pd.DataFrame(
        {
            "player_lookup": [f"{tag}{i}" for i in range(len(dates))],
            "game_id": [f"g{i}" for i in range(len(dates))],
            "game_date": pd.Series(dates, dtype="dbdate"),
            "team_abbr": "BOS",
            "opponent_team_abbr": "NYK",
        }
    )


def utcg_rows(dates: list[dt.date]) -> pd.DataFrame:
    """Return UTCG rows, one per date."""
    return pd.DataFrame(
        {
            "team_abbr": "BOS",
            "game_id": [f"g{i}" for i in range(len(dates))],
            "game_date": pd.Series(dates, dtype="dbdate"),
        }
    )


def days(start: dt.date, n: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


@pytest.fixture
def tables(local_params) -> Tables:
    return local_params.tables


@pytest.fixture
def wh(empty_wh, tables):
    """UPCG: 3 stale rows (03-31..04-02), 1 on the cutoff, 7 after; UTCG: 2 stale, 5 kept."""
    empty_wh.load_dataframe(tables.upcg, upcg_rows(days(dt.date(2025, 3, 31), 11)))
    empty_wh.load_dataframe(tables.utcg, utcg_rows(days(dt.date(2025, 4, 1), 7)))
    return empty_wh


def plan_of(wh, tables, fraction: float = 0.9, ttl: int = 7) -> cleanup.CleanupPlan:
    return cleanup.plan_cleanup(wh, tables, TODAY, ttl, fraction)


def counts(wh, tables) -> dict[str, int]:
    return {t.short: wh.row_count(t) for t in cleanup.upcoming_tables(tables)}


def audit_rows(wh, tables) -> pd.DataFrame:
    return wh.query(f"SELECT * FROM {tables.cleanup_operations.sql} ORDER BY cleanup_time")


def all_backups(wh, tables) -> list:
    return [b for bs in cleanup.list_backups(wh, tables).values() for b in bs]


def test_plan_computes_cutoff_once_and_counts_stale_rows_per_table_and_date(wh, tables):
    plan = plan_of(wh, tables)
    assert plan.cutoff == CUTOFF
    upcg, utcg = plan.preview(tables.upcg), plan.preview(tables.utcg)
    assert (upcg.stale_rows, upcg.stale_dates, upcg.total_rows) == (3, 3, 11)
    assert (upcg.min_date, upcg.max_date) == (dt.date(2025, 3, 31), dt.date(2025, 4, 2))
    assert (utcg.stale_rows, utcg.total_rows) == (2, 7)
    assert plan.per_date["rows"].sum() == 5
    assert (
        plan.token(tables.upcg) == "delete 3 rows from nba_analytics.upcoming_player_game_context"
    )


@pytest.mark.safeguard
def test_cleanup_keeps_rows_dated_exactly_on_the_cutoff(wh, tables):
    plan = plan_of(wh, tables)
    cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="t1")
    left = wh.query(f"SELECT MIN(game_date) AS d FROM {tables.upcg.sql}")["d"].iloc[0]
    assert left == CUTOFF
    assert wh.row_count(tables.upcg, "game_date = @d", {"d": CUTOFF}) == 1


@pytest.mark.safeguard
def test_deleted_count_equals_previewed_count_and_backups_are_real_copies(wh, tables):
    before = counts(wh, tables)
    plan = plan_of(wh, tables)
    result = cleanup.apply_cleanup(
        wh, tables, plan, confirm=list(plan.tokens.values()), run_id="t2"
    )
    assert result.total_deleted == plan.total_stale == 5
    for t in result.tables:
        assert t.deleted == t.previewed and t.verified
        assert t.backup_rows == before[t.table.short] == wh.row_count(t.backup_table)
        assert wh.row_count(t.backup_table, "game_date < @c", {"c": CUTOFF}) == t.deleted
    assert counts(wh, tables) == {k: v - plan.preview(k).stale_rows for k, v in before.items()}


def test_apply_writes_one_audit_row_matching_the_declared_schema(wh, tables):
    plan = plan_of(wh, tables)
    cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="t3", trigger="runbook")
    rows = audit_rows(wh, tables)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["status"], row["trigger"], row["total_records_deleted"]) == (
        "success",
        "runbook",
        5,
    )
    assert row["cutoff_date"] == CUTOFF
    assert sum(e["records_deleted"] for e in json.loads(row["tables_cleaned"])) == 5


@pytest.mark.safeguard
def test_dry_run_changes_nothing_and_speaks_in_the_conditional(wh, tables):
    before = counts(wh, tables)
    result = cleanup.apply_cleanup(wh, tables, plan_of(wh, tables), dry_run=True)
    assert result.total_deleted == 0
    assert any(m.startswith("Would delete 3 rows") for m in result.messages)
    assert counts(wh, tables) == before
    assert all_backups(wh, tables) == [] and audit_rows(wh, tables).empty


@pytest.mark.parametrize(
    "confirm",
    [
        None,
        "yes",
        "delete 4 rows from nba_analytics.upcoming_player_game_context",
        ["delete 3 rows from nba_analytics.upcoming_player_game_context"],
        {"nba_analytics.upcoming_team_game_context": "delete 3 rows from x.y"},
    ],
)
@pytest.mark.safeguard
def test_wrong_missing_or_stale_token_changes_nothing(wh, tables, confirm):
    before = counts(wh, tables)
    with pytest.raises(ConfirmationRequired) as err:
        cleanup.apply_cleanup(wh, tables, plan_of(wh, tables), confirm=confirm, run_id="t4")
    assert err.value.expected_token and "delete" in err.value.expected_token
    assert counts(wh, tables) == before
    assert all_backups(wh, tables) == [] and audit_rows(wh, tables).empty


def test_token_from_an_older_plan_is_refused_after_the_data_changed(wh, tables):
    old = plan_of(wh, tables)
    wh.load_dataframe(tables.upcg, upcg_rows([dt.date(2025, 3, 1)], tag="late"))
    new = plan_of(wh, tables)
    with pytest.raises(ConfirmationRequired):
        cleanup.check_confirmation(new, old.tokens)
    cleanup.check_confirmation(new, new.tokens)


def test_a_single_token_string_confirms_a_plan_with_one_stale_table(empty_wh, tables):
    empty_wh.load_dataframe(tables.upcg, upcg_rows(days(dt.date(2025, 4, 1), 4)))
    plan = plan_of(empty_wh, tables)
    result = cleanup.apply_cleanup(empty_wh, tables, plan, confirm=f"  {plan.token(tables.upcg)} ")
    assert result.total_deleted == 2


@pytest.mark.safeguard
def test_existing_backup_is_never_overwritten_and_nothing_is_deleted(wh, tables):
    taken = cleanup.backup_id(tables.utcg, "t5")
    wh.copy_table(tables.utcg, taken)
    wh.execute(f"DELETE FROM {taken.sql} WHERE game_date > @d", {"d": dt.date(2025, 4, 5)})
    kept_in_backup = wh.row_count(taken)
    before = counts(wh, tables)
    with pytest.raises(TableExistsError):
        cleanup.apply_cleanup(
            wh, tables, plan_of(wh, tables), confirm=plan_of(wh, tables).tokens, run_id="t5"
        )
    assert wh.row_count(taken) == kept_in_backup
    # The second table's backup name collides: the first table must not have been cleaned.
    assert counts(wh, tables) == before
    assert cleanup.list_backups(wh, tables)[tables.upcg] == []
    assert audit_rows(wh, tables)["status"].tolist() == ["refused"]


@pytest.mark.safeguard
def test_stale_row_inserted_after_planning_refuses_the_delete_and_deletes_nothing(wh, tables):
    plan = plan_of(wh, tables)
    wh.load_dataframe(tables.utcg, utcg_rows([dt.date(2025, 3, 2)]))
    before = counts(wh, tables)
    with pytest.raises(DeleteCountMismatchError) as err:
        cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="t6")
    assert (err.value.expected_rows, err.value.actual_rows) == (2, 3)
    assert counts(wh, tables) == before
    assert all_backups(wh, tables) == []


def test_delete_guard_removes_nothing_when_the_count_differs(wh, tables):
    with pytest.raises(DeleteCountMismatchError):
        wh.delete_exact(tables.upcg, cleanup.STALE, {"cutoff": CUTOFF}, expected_rows=2)
    assert wh.row_count(tables.upcg) == 11


def test_cap_refuses_a_delete_over_the_fraction_and_changes_nothing(wh, tables):
    before = counts(wh, tables)
    plan = plan_of(wh, tables, fraction=0.25)  # UPCG 3/11 = 27% > 25%
    with pytest.raises(CleanupCapExceededError) as err:
        cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="t7")
    assert err.value.table == tables.upcg.short
    assert counts(wh, tables) == before and all_backups(wh, tables) == []
    assert audit_rows(wh, tables)["status"].tolist() == ["refused"]


@pytest.mark.safeguard
def test_empty_preview_deletes_nothing_and_says_so(empty_wh, tables):
    empty_wh.load_dataframe(tables.upcg, upcg_rows(days(CUTOFF, 5)))
    plan = plan_of(empty_wh, tables)
    assert plan.total_stale == 0 and plan.tokens == {}
    result = cleanup.apply_cleanup(empty_wh, tables, plan, confirm=None)
    assert result.status == "nothing_to_do" and result.total_deleted == 0
    assert any("No stale records" in m for m in result.messages)
    assert empty_wh.row_count(tables.upcg) == 5 and all_backups(empty_wh, tables) == []


@pytest.mark.parametrize("ttl", [0, -3])
def test_ttl_of_zero_or_less_is_rejected(wh, tables, ttl):
    with pytest.raises(ValueError):
        plan_of(wh, tables, ttl=ttl)


def test_restore_overwrites_the_live_table_and_verifies_counts(wh, tables):
    plan = plan_of(wh, tables)
    result = cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="t8")
    backup = result.tables[0].backup_table
    restored = cleanup.restore_from_backup(wh, tables.upcg, backup)
    assert restored.verified and restored.restored_rows == 11 == wh.row_count(tables.upcg)
    assert cleanup.list_backups(wh, tables)[tables.upcg] == [backup]


# -- the command line --------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path, monkeypatch, wh, local_params):
    """Point `--env local` at the test's warehouse through a copied params folder."""
    folder = tmp_path / "params"
    folder.mkdir()
    text = (paths.PARAMS_DIR / "local.yaml").read_text()
    text = text.replace(
        "warehouse_dir: outputs/local/warehouse", f"warehouse_dir: {local_params.warehouse_path}"
    )
    (folder / "local.yaml").write_text(text)
    monkeypatch.setattr(paths, "PARAMS_DIR", folder)
    return wh


def test_cli_dry_run_prints_cutoff_preview_and_tokens_and_changes_nothing(cli_env, tables, capsys):
    before = counts(cli_env, tables)
    assert main(["cleanup", "--env", "local", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("Cutoff: 2025-04-03") == 1
    assert "delete 3 rows from nba_analytics.upcoming_player_game_context" in out
    assert "Would delete 3 rows" in out
    assert counts(cli_env, tables) == before


def test_cli_without_confirmation_exits_nonzero_showing_the_tokens(cli_env, tables, capsys):
    before = counts(cli_env, tables)
    assert main(["cleanup", "--env", "local"]) == 2
    assert "delete 2 rows from nba_analytics.upcoming_team_game_context" in capsys.readouterr().err
    assert counts(cli_env, tables) == before


def test_cli_deletes_with_the_previewed_tokens(cli_env, tables, capsys):
    args = [
        "cleanup",
        "--env",
        "local",
        "--run-id",
        "cli1",
        "--confirm",
        "delete 3 rows from nba_analytics.upcoming_player_game_context",
        "--confirm",
        "delete 2 rows from nba_analytics.upcoming_team_game_context",
    ]
    assert main(args) == 0
    assert "deleted 5 rows (previewed 5)" in capsys.readouterr().out
    assert counts(cli_env, tables) == {tables.upcg.short: 8, tables.utcg.short: 5}


@pytest.mark.parametrize("value", ["0", "-1"])
def test_cli_rejects_days_of_zero_or_less(cli_env, tables, capsys, value):
    before = counts(cli_env, tables)
    assert main(["cleanup", "--env", "local", "--days", value]) == 2
    assert "--days" in capsys.readouterr().err
    assert counts(cli_env, tables) == before


def test_cli_restore_puts_the_backup_back(cli_env, tables, capsys):
    plan = plan_of(cli_env, tables)
    cleanup.apply_cleanup(cli_env, tables, plan, confirm=plan.tokens, run_id="r9")
    backup = cleanup.backup_id(tables.upcg, "r9")
    assert (
        main(["restore", "--env", "local", "--table", tables.upcg.short, "--backup", backup.short])
        == 0
    )
    assert cli_env.row_count(tables.upcg) == 11
    assert (
        main(
            [
                "restore",
                "--env",
                "local",
                "--table",
                tables.upcg.short,
                "--backup",
                tables.pgs.short,
            ]
        )
        == 2
    )


# -- the seeded league and the BigQuery contract ------------------------------------------------


@pytest.fixture
def league(request):
    pytest.importorskip("runbook_lib.platform.league", reason="the league seed is not written yet")
    return request.getfixturevalue("seeded_wh")


def test_seeded_league_cleanup_deletes_exactly_the_preview_and_keeps_the_cutoff(league, tables):
    plan = plan_of(league, tables)
    assert plan.total_stale > 0
    kept_before = {
        t.short: league.row_count(t, "game_date >= @c", {"c": CUTOFF})
        for t in cleanup.upcoming_tables(tables)
    }
    result = cleanup.apply_cleanup(league, tables, plan, confirm=plan.tokens, run_id="seed")
    assert result.total_deleted == plan.total_stale
    for t in cleanup.upcoming_tables(tables):
        assert league.row_count(t, "game_date < @c", {"c": CUTOFF}) == 0
        assert league.row_count(t) == kept_before[t.short]


def test_contract_plan_and_apply_give_the_same_answer_on_both_backends(warehouse):
    wh, tables = warehouse.wh, warehouse.tables
    wh.load_dataframe(tables.upcg, upcg_rows(days(dt.date(2025, 3, 31), 11)))
    wh.load_dataframe(tables.utcg, utcg_rows(days(dt.date(2025, 4, 1), 7)))
    plan = plan_of(wh, tables)
    assert [p.stale_rows for p in plan.previews] == [3, 2]
    assert plan.preview(tables.upcg).min_date == dt.date(2025, 3, 31)
    result = cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="c1")
    assert result.total_deleted == 5 and all(t.verified for t in result.tables)
    assert wh.row_count(tables.upcg, "game_date < @c", {"c": CUTOFF}) == 0
    assert wh.row_count(tables.upcg, "game_date = @c", {"c": CUTOFF}) == 1
    assert wh.row_count(result.tables[0].backup_table) == 11
    assert audit_rows(wh, tables)["total_records_deleted"].tolist() == [5]
    restored = cleanup.restore_from_backup(wh, tables.upcg, result.tables[0].backup_table)
    assert restored.verified and wh.row_count(tables.upcg) == 11
