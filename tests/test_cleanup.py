"""The stale-data cleanup: plan, confirmation, verified backup, exact delete, verification."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shlex
import shutil

import pandas as pd
import pytest

from runbook_lib import paths
from runbook_lib.cli import main
from runbook_lib.errors import (
    CleanupCapExceededError,
    ConfirmationRequired,
    DeleteCountMismatchError,
    TableExistsError,
    TableNotFoundError,
    WarehouseError,
)
from runbook_lib.platform import cleanup, cleanup_confirm
from runbook_lib.platform.schema import Tables
from runbook_lib.run.params import load_params
from runbook_lib.warehouse import connect
from runbook_lib.warehouse.ids import TableId

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


def load_stale_rows(wh, tables) -> None:
    """UPCG: 3 stale rows (03-31..04-02), 1 on the cutoff, 7 after; UTCG: 2 stale, 5 kept."""
    wh.load_dataframe(tables.upcg, upcg_rows(days(dt.date(2025, 3, 31), 11)))
    wh.load_dataframe(tables.utcg, utcg_rows(days(dt.date(2025, 4, 1), 7)))


@pytest.fixture
def wh(empty_wh, tables):
    """A warehouse of the test's own with `load_stale_rows`' rows."""
    load_stale_rows(empty_wh, tables)
    return empty_wh


@pytest.fixture(scope="module")
def _shared_stale(tmp_path_factory, empty_file):
    """One warehouse with `load_stale_rows`' rows for the module's tests that must change nothing.

    Opening a warehouse creates a DuckDB instance (30-45 ms on 2 cores) and the rows take two
    loads: phase 01 waits for these tests, and when they pass they only read. Held open like
    the safeguard tests' own warehouses (`scratch_session`).
    """
    folder = tmp_path_factory.mktemp("shared-stale") / "warehouse"
    folder.mkdir()
    shutil.copy(empty_file, folder / empty_file.name)
    params = load_params("local", {"warehouse_dir": str(folder), "today": str(TODAY)})
    shared = connect(params)
    with shared.scratch_session():
        load_stale_rows(shared, params.tables)
        yield shared, params.tables, _state(shared, params.tables)


def _state(wh, tables: Tables) -> dict:
    """Return each table of each dataset with its row count (one query): what a cleanup changes."""
    ids = [
        TableId(wh.project, dataset, name)
        for dataset in sorted(set(tables.datasets.values()))
        for name in wh.list_tables(dataset)
    ]
    sql = " UNION ALL ".join(f"SELECT '{t.short}' AS t, COUNT(*) AS n FROM {t.sql}" for t in ids)
    return dict(wh.query(sql).itertuples(index=False))


@pytest.fixture
def untouched(_shared_stale):
    """Return (warehouse, tables) with `load_stale_rows`' rows, shared by the module's tests that
    must change nothing; it is checked to be exactly as loaded before each of them, so a test
    that changed it fails every later one too instead of leaving them another state to judge."""
    shared, tables, loaded = _shared_stale
    assert _state(shared, tables) == loaded, "an earlier test changed the shared warehouse"
    return shared, tables


def plan_of(wh, tables, fraction: float = 0.9, ttl: int = 7) -> cleanup.CleanupPlan:
    return cleanup.plan_cleanup(wh, tables, TODAY, ttl, fraction, env="local")


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
    assert re.fullmatch(
        r"delete 3 rows from nba_analytics\.upcoming_player_game_context \(plan [0-9a-f]{6}\)",
        plan.token(tables.upcg),
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
def test_dry_run_changes_nothing_and_speaks_in_the_conditional(untouched):
    wh, tables = untouched
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
        "delete 3 rows from nba_analytics.upcoming_player_game_context (plan 000000); "
        "delete 2 rows from nba_analytics.upcoming_team_game_context (plan 000000)",
        {"nba_analytics.upcoming_team_game_context": "delete 3 rows from x.y"},
    ],
)
@pytest.mark.safeguard
def test_wrong_missing_or_stale_token_changes_nothing(untouched, confirm):
    wh, tables = untouched
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
    plain = cleanup_confirm.token(tables.upcg.short, 3, plan.preview(tables.upcg).plan_id)
    with pytest.raises(CleanupCapExceededError) as err:
        cleanup.apply_cleanup(
            wh, tables, plan, confirm=[plain, plan.token(tables.utcg)], run_id="t7"
        )
    assert err.value.table == tables.upcg.short
    assert err.value.token == plan.token(tables.upcg) and err.value.token in str(err.value)
    assert counts(wh, tables) == before and all_backups(wh, tables) == []
    assert audit_rows(wh, tables)["status"].tolist() == ["refused"]


def test_a_token_over_the_cap_names_the_share_and_the_cap(wh, tables):
    plan = plan_of(wh, tables, fraction=0.25)  # UPCG 3/11 = 27% > 25%, UTCG 2/6 = 33%
    upcg = plan.preview(tables.upcg)
    assert plan.token(tables.upcg) == (
        f"delete 3 rows (27%, over the 25% cap) from {tables.upcg.short} (plan {upcg.plan_id})"
    )
    assert "over the" not in plan_of(wh, tables).token(tables.upcg)  # under the 90% cap


def test_the_cap_is_passed_by_a_person_confirming_the_share(wh, tables):
    plan = plan_of(wh, tables, fraction=0.25)  # the first purge: both tables over the cap
    result = cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id="t7b")
    assert result.status == "success" and result.total_deleted == 5
    assert len(all_backups(wh, tables)) == 2


def test_the_daily_function_never_deletes_over_the_cap_even_with_the_tokens(wh, tables):
    before = counts(wh, tables)
    plan = plan_of(wh, tables, fraction=0.25)
    with pytest.raises(CleanupCapExceededError) as err:
        cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, trigger="scheduled")
    assert err.value.token is None and "runbook cleanup" in str(err.value)
    assert counts(wh, tables) == before and all_backups(wh, tables) == []


def test_auto_never_confirms_a_plan_over_the_cap(wh, tables):
    plan = plan_of(wh, tables, fraction=0.25)
    with pytest.raises(ConfirmationRequired, match="over the cap"):
        cleanup.resolve_confirmation(plan, "auto", cleanup.COMMAND_LINE, is_local=True)


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
    assert plan_of(cli_env, tables).token(tables.upcg) in out
    assert "Would delete 3 rows" in out
    assert counts(cli_env, tables) == before


def test_cli_without_confirmation_exits_nonzero_showing_the_tokens(cli_env, tables, capsys):
    before = counts(cli_env, tables)
    assert main(["cleanup", "--env", "local"]) == 2
    assert plan_of(cli_env, tables).token(tables.utcg) in capsys.readouterr().err
    assert counts(cli_env, tables) == before


def test_cli_deletes_with_the_previewed_tokens(cli_env, tables, capsys):
    plan = plan_of(cli_env, tables)
    args = [
        "cleanup",
        "--env",
        "local",
        "--run-id",
        "cli1",
        "--confirm",
        plan.token(tables.upcg),
        "--confirm",
        plan.token(tables.utcg),
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
def league(seeded_wh):
    return seeded_wh


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


# -- review findings: bad input is one clear error, exit 2, nothing changed ----------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_ttl_too_large_for_a_date_is_a_value_error_not_an_overflow(wh, tables):
    with pytest.raises(ValueError, match="ttl_days must be at most"):
        plan_of(wh, tables, ttl=10_000_000)


def test_cli_days_too_large_for_a_date_names_days_and_exits_2(cli_env, tables, capsys):
    before = counts(cli_env, tables)
    assert main(["cleanup", "--env", "local", "--days", "10000000", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: command line: --days:") and err.count("\n") == 1
    assert counts(cli_env, tables) == before


def test_one_string_of_tokens_separated_by_semicolons_confirms_the_plan(wh, tables):
    plan = plan_of(wh, tables)
    UPCG_TOKEN, UTCG_TOKEN = plan.token(tables.upcg), plan.token(tables.utcg)  # noqa: N806
    cleanup.check_confirmation(plan, f"{UTCG_TOKEN} ;  {UPCG_TOKEN}")
    cleanup.check_confirmation(plan, [f"{UPCG_TOKEN}; {UTCG_TOKEN}"])
    with pytest.raises(ConfirmationRequired) as err:
        cleanup.check_confirmation(plan, f"{UPCG_TOKEN}; delete 9 rows from nba_analytics.x")
    assert err.value.given == "delete 9 rows from nba_analytics.x"


def test_confirmation_errors_read_as_missing_or_not_matching():
    assert "no confirmation was given for the previewed plan" in str(ConfirmationRequired("t"))
    wrong = str(ConfirmationRequired("t", "yes"))
    assert "the confirmation 'yes' does not match the previewed plan" in wrong


def test_cli_without_a_terminal_says_so_and_its_hint_is_a_usable_confirm(
    cli_env, tables, capsys, monkeypatch
):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    before = counts(cli_env, tables)
    assert main(["cleanup", "--env", "local", "--run-id", "h1"]) == 2
    err = capsys.readouterr().err
    assert "stdin is not a terminal: pass --confirm" in err and err.count("\n") == 1
    assert counts(cli_env, tables) == before
    # Paste the hint as printed: one --confirm holding every token.
    hint = shlex.split(err.split("pass ", 1)[1].rsplit(")", 1)[0])
    assert hint[0] == "--confirm" and len(hint) == 2
    assert main(["cleanup", "--env", "local", "--run-id", "h1", *hint]) == 0
    assert counts(cli_env, tables) == {tables.upcg.short: 8, tables.utcg.short: 5}


def test_cli_help_describes_both_ways_of_giving_several_tokens(capsys):
    with pytest.raises(SystemExit):
        main(["cleanup", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "separated by ';' in one --confirm" in out and "repeated --confirm" in out


def test_prompt_names_only_the_token_typed_wrong(cli_env, tables, capsys, monkeypatch):
    plan = plan_of(cli_env, tables)
    UPCG_TOKEN, UTCG_TOKEN = plan.token(tables.upcg), plan.token(tables.utcg)  # noqa: N806
    answers = iter([UPCG_TOKEN, "delete 9 rows from nba_analytics.upcoming_team_game_context"])
    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    before = counts(cli_env, tables)
    assert main(["cleanup", "--env", "local"]) == 2
    err = capsys.readouterr().err
    assert f"confirm with exactly: '{UTCG_TOKEN}'" in err and UPCG_TOKEN not in err
    assert counts(cli_env, tables) == before


def _cleaned(wh, tables, run_id: str) -> cleanup.CleanupResult:
    plan = plan_of(wh, tables)
    return cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, run_id=run_id)


def test_cli_restore_of_a_missing_backup_lists_the_backups_and_never_suggests_a_seed(
    cli_env, tables, capsys
):
    _cleaned(cli_env, tables, "r1")
    before = counts(cli_env, tables)
    missing = f"{tables.upcg.short}_backup_nope"
    assert (
        main(["restore", "--env", "local", "--table", tables.upcg.short, "--backup", missing]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: command line: --backup:") and err.count("\n") == 1
    assert cleanup.backup_id(tables.upcg, "r1").short in err and "seed" not in err
    assert counts(cli_env, tables) == before


def test_a_missing_table_names_the_full_table_and_suggests_a_seed_only_for_an_empty_file(
    wh, tables, local_params
):
    missing = tables.upcg.with_table("no_such_backup")
    with pytest.raises(WarehouseError) as err:
        wh.row_count(missing)
    assert isinstance(err.value, TableNotFoundError) and err.value.table == str(missing)
    assert "Catalog Error" not in str(err.value) and "seed" not in str(err.value)
    empty = connect(local_params.model_copy(update={"project": "nba-props-empty"}))
    with pytest.raises(TableNotFoundError, match="runbook seed"):
        empty.row_count(TableId("nba-props-empty", "nba_analytics", "t"))


def test_cli_restore_accepts_the_full_backup_id_the_cleanup_prints(cli_env, tables, capsys):
    backup = _cleaned(cli_env, tables, "r2").backups[0]
    assert backup.startswith("nba-props-platform.")
    assert (
        main(["restore", "--env", "local", "--table", tables.upcg.short, "--backup", backup]) == 0
    )
    assert cli_env.row_count(tables.upcg) == 11


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--backup", "nba-props-staging.nba_analytics.upcoming_player_game_context_backup_r3"),
        ("--backup", "nba_analytics.upcoming_player_game_context_backup_r3;x"),
        ("--table", "nba_analytics.upcoming player"),
    ],
)
def test_cli_restore_refuses_another_project_or_a_bad_name_naming_the_flag(
    cli_env, tables, capsys, flag, value
):
    _cleaned(cli_env, tables, "r3")
    before = counts(cli_env, tables)
    args = {"--table": tables.upcg.short, "--backup": str(cleanup.backup_id(tables.upcg, "r3"))}
    args[flag] = value
    argv = ["restore", "--env", "local", *[x for kv in args.items() for x in kv]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and "params file" not in err.split("(to fix this")[0]
    assert "Traceback" not in err and counts(cli_env, tables) == before


def test_cli_dry_run_shows_the_cap_and_flags_tables_over_it(cli_env, tables, capsys):
    # Today 2025-04-20: every UPCG and UTCG row of the fixture is stale (100% > 90%).
    assert main(["cleanup", "--env", "local", "--today", "2025-04-20", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Cap: one run deletes at most 90% of a table" in out
    assert "100.0%" in out and "OVER CAP" in out and "token that names the share" in out
    assert "(100%, over the 90% cap) from" in out
    assert plan_of(cli_env, tables, ttl=7).summary()["over_cap"].tolist() == [False, False]


def test_cli_over_the_cap_refuses_the_plain_token_and_deletes_with_the_one_naming_the_share(
    cli_env, tables, capsys
):
    argv = ["cleanup", "--env", "local", "--today", "2025-04-20"]
    assert main([*argv, "--dry-run"]) == 0
    line = next(
        ln.split("--confirm ", 1)[1].strip("'")
        for ln in capsys.readouterr().out.splitlines()
        if "confirm with:" in ln
    )
    before = counts(cli_env, tables)
    plain = line.replace(" (100%, over the 90% cap)", "")
    assert main([*argv, "--confirm", plain]) == 1
    err = capsys.readouterr().err
    assert "the cap is 90%" in err and "(100%, over the 90% cap)" in err
    assert counts(cli_env, tables) == before and all_backups(cli_env, tables) == []
    assert main([*argv, "--confirm", line]) == 0
    assert "CLEANUP COMPLETE" in capsys.readouterr().out
    assert counts(cli_env, tables) == {t: 0 for t in before}


def test_the_cap_is_checked_before_the_confirmation(wh, tables):
    with pytest.raises(CleanupCapExceededError):
        cleanup.apply_cleanup(wh, tables, plan_of(wh, tables, fraction=0.25), confirm=None)


def test_the_audit_row_records_the_backup_suffix_as_run_id_when_none_is_given(wh, tables):
    plan = plan_of(wh, tables)
    now = dt.datetime(2025, 4, 10, 4, 5, 6, tzinfo=dt.UTC)
    result = cleanup.apply_cleanup(wh, tables, plan, confirm=plan.tokens, now=now)
    run_id = audit_rows(wh, tables)["run_id"].iloc[0]
    assert run_id.startswith("20250410T040506Z-")  # the one run-id form, runbook_lib/clock.py
    assert all(b.endswith(f"_backup_{run_id.replace('-', '_')}") for b in result.backups)


def test_cli_today_that_is_not_a_date_names_the_flag(cli_env, capsys):
    assert main(["cleanup", "--env", "local", "--today", "2025-13-01", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("error: --today: '2025-13-01' is not a date")


def test_cli_cleanup_should_refuse_while_a_run_holds_the_environment_lock(
    cli_env, tables, capsys, tmp_path, monkeypatch
):
    from runbook_lib.run import lock

    before = counts(cli_env, tables)
    params = load_params("local")
    held = lock.acquire(params, "a-running-run")
    try:
        code = main(["cleanup", "--env", "local", "--confirm", "anything"])
    finally:
        lock.release(params, held)
    assert code == 1
    assert "a-running-run" in capsys.readouterr().err
    assert counts(cli_env, tables) == before


def test_prune_should_drop_only_backups_older_than_the_retention(wh, tables):
    import datetime as dt

    upcg = tables.upcg
    old = upcg.with_table(f"{upcg.table}_backup_20250301_040000_abc")
    recent = upcg.with_table(f"{upcg.table}_backup_20250405_040000_def")
    undated = upcg.with_table(f"{upcg.table}_backup_manual")
    for b in (old, recent, undated):
        wh.copy_table(upcg, b)
    now = dt.datetime(2025, 4, 10, 4, 0, tzinfo=dt.UTC)
    assert cleanup.prune_backups(wh, tables, 30, now, dry_run=True) == [old]
    assert wh.table_exists(old)
    assert cleanup.prune_backups(wh, tables, 30, now) == [old]
    assert not wh.table_exists(old) and wh.table_exists(recent) and wh.table_exists(undated)
