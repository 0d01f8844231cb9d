"""The backfill's safeguards on the warehouse: the original 21 tests' behaviours plus the fixes."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

from runbook_lib.errors import CoverageValidationError, DateRangeError, PreflightFailedError
from runbook_lib.platform import backfill_chunk
from runbook_lib.platform.backfill_chunk import ChunkContext, publish, validate_staged
from runbook_lib.platform.coverage import FALLBACK, UPCG, PlayerCounts
from runbook_lib.platform.schema import PCF_STAGING
from runbook_lib.run.backfill_steps import run_backfill
from tests.test_factors import load, pgs_row, upcg_row

SEASON_START = dt.date(2023, 1, 2)
D1, D2, D3, D4 = (dt.date(2023, 2, d) for d in (20, 21, 22, 23))
EMPTY_DAY = dt.date(2023, 2, 19)  # scheduled, but no box scores (postponed games)
BOOT_DAY = dt.date(2023, 1, 5)  # day 4 of the season


def players(n: int, prefix: str = "p") -> list[str]:
    """Return n player ids."""
    return [f"{prefix}{i:03d}" for i in range(n)]


def make_league(wh, tables, pgs: dict, upcg: dict | None = None) -> None:
    """Schedule every date (plus the season opener), PGS for pgs[d] players, UPCG for upcg[d]."""
    sched = [
        {
            "game_id": f"{d:%Y%m%d}_CLE_DEN",
            "nba_game_id": f"00222{i:05d}",
            "game_date": d,
            "season_year": 2022,
            "home_team_abbr": "DEN",
            "away_team_abbr": "CLE",
            "game_type": "Regular Season",
        }
        for i, d in enumerate(sorted({SEASON_START, EMPTY_DAY, BOOT_DAY, *pgs}))
    ]
    load(wh, tables.schedule, sched)
    load(wh, tables.pgs, [pgs_row(p, d) for d, n in pgs.items() for p in players(n)])
    rows = [upcg_row(p, d) for d, n in (upcg or {}).items() for p in players(n)]
    if rows:
        load(wh, tables.upcg, rows)


def pcf_counts(wh, tables) -> dict:
    """Return PCF rows per game date."""
    df = wh.query(f"SELECT game_date, COUNT(*) AS n FROM {tables.pcf.sql} GROUP BY game_date")
    return {str(r.game_date): int(r.n) for r in df.itertuples()}


def metadata(wh, tables):
    """Return the metadata rows in date order."""
    return wh.query(
        f"SELECT * FROM {tables.backfill_metadata.sql} ORDER BY analysis_date, tracked_at"
    )


@pytest.fixture
def caplog_info(caplog):
    caplog.set_level(logging.INFO, logger="runbook.backfill")
    return caplog


@pytest.fixture
def short_build(monkeypatch, local_params):
    """Make the build come up short (a fault the real statement does not produce on demand)."""
    keep = {"n": None, "dates": None}  # keep the first n players of `dates` (None: all dates)

    def build(wh, tables, run_id, upcg, fallback):
        built = real(wh, tables, run_id, upcg, fallback)
        hit = [d for d in upcg + fallback if keep["dates"] is None or d in keep["dates"]]
        if keep["n"] is not None and hit:
            wh.execute(
                f"DELETE FROM {tables.id(PCF_STAGING).sql} WHERE run_id = @r "
                f"AND player_lookup >= @cut AND game_date IN UNNEST(@hit)",
                {"r": run_id, "cut": f"p{keep['n']:03d}", "hit": hit},
            )
        return built

    real = backfill_chunk.build_staging
    monkeypatch.setattr(backfill_chunk, "build_staging", build)
    return keep


# -- coverage validation (original tests 1-7) ---------------------------------------------------
def _validate(wh, params, expected: int, staged: int, force=False):
    """Stage `staged` of `expected` players for D1, validate and publish; return the outcome."""
    load(wh, params.tables.pgs, [pgs_row(p, D1) for p in players(expected)])
    rows = [{**pgs_row(p, D1), "run_id": "r1"} for p in players(staged)]
    if rows:
        load(
            wh,
            params.tables.id(PCF_STAGING),
            [{k: r[k] for k in ("player_lookup", "game_date", "game_id", "run_id")} for r in rows],
        )
    ctx = ChunkContext(wh, params.tables, params.backfill, "r1", force=force)
    outcomes = validate_staged(ctx, [D1], {D1: PlayerCounts(expected, 0)}, {D1: FALLBACK})
    publish(ctx, outcomes)
    return outcomes[0]


@pytest.mark.parametrize(
    "expected,staged,status",
    [
        (187, 187, "COMPLETE"),
        (200, 190, "COMPLETE"),
        (200, 185, "INCOMPLETE"),
    ],
)
@pytest.mark.safeguard
def test_validation_passes_at_and_above_90_percent_and_publishes(
    empty_wh, local_params, caplog_info, expected, staged, status
):
    o = _validate(empty_wh, local_params, expected, staged)
    assert (o.status, o.actual, o.expected) == (status, staged, expected)
    assert pcf_counts(empty_wh, local_params.tables) == {str(D1): staged}
    assert f"✅ Coverage validation passed: {staged}/{expected} players" in caplog_info.text
    assert ("⚠️  Low coverage for" in caplog_info.text) == (status == "INCOMPLETE")


@pytest.mark.parametrize("expected,staged", [(187, 94), (187, 1)])
@pytest.mark.safeguard
def test_validation_fails_at_50_and_0_5_percent_and_publishes_nothing(
    empty_wh, local_params, caplog_info, expected, staged
):
    o = _validate(empty_wh, local_params, expected, staged)
    assert o.status == "FAILED"
    assert f"{staged}/{expected} players" in o.error
    assert pcf_counts(empty_wh, local_params.tables) == {}
    assert f"❌ COVERAGE VALIDATION FAILED for {D1}:" in caplog_info.text


@pytest.mark.safeguard
def test_validation_fails_a_scheduled_game_day_with_no_box_scores(empty_wh, local_params, caplog_info):
    o = _validate(empty_wh, local_params, 0, 0)
    assert o.status == "FAILED"
    assert "scheduled game day with no box scores: 0 PGS players" in o.error
    assert f"❌ NO BOX SCORES for {D1}" in caplog_info.text


@pytest.mark.safeguard
def test_force_bypasses_validation(empty_wh, local_params, caplog_info):
    o = _validate(empty_wh, local_params, 187, 1, force=True)
    assert o.status != "FAILED"
    assert pcf_counts(empty_wh, local_params.tables) == {str(D1): 1}
    assert f"Coverage validation SKIPPED for {D1} (--force flag used)" in caplog_info.text


@pytest.mark.safeguard
def test_validation_query_error_fails_safe(empty_wh, local_params, short_build, caplog_info):
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20})
    real = backfill_chunk.build_staging

    def build_then_lose_pgs(wh, tables, run_id, upcg, fallback):
        built = real(wh, tables, run_id, upcg, fallback)
        wh.drop_table(tables.pgs)  # the validation query can no longer run
        return built

    backfill_chunk.build_staging = build_then_lose_pgs
    with pytest.raises(CoverageValidationError) as err:
        run_backfill(empty_wh, local_params, D1, D1)
    assert "Coverage validation error" in err.value.failed[str(D1)]
    assert pcf_counts(empty_wh, t) == {}
    assert f"❌ Coverage validation error for {D1}" in caplog_info.text


# -- fallback and defensive logging (original tests 8-11) ---------------------------------------
@pytest.mark.safeguard
def test_fallback_replaces_partial_and_empty_upcg(empty_wh, local_params, caplog_info):
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20, D2: 20, D3: 20}, upcg={D1: 1, D3: 18})
    result = run_backfill(empty_wh, local_params, D1, D3, allow_partial_context=True)
    decisions = {str(o.game_date): o.decision for o in result.outcomes}
    assert decisions == {str(D1): FALLBACK, str(D2): FALLBACK, str(D3): UPCG}
    assert pcf_counts(empty_wh, t) == {str(D1): 20, str(D2): 20, str(D3): 18}
    text = caplog_info.text
    assert "Reason: UPCG has incomplete data (1/20 = 5.0%)" in text
    assert "Reason: UPCG is empty" in text
    assert f"❌ INCOMPLETE DATA DETECTED for {D1}:" in text
    assert f"No upcoming_player_game_context for {D2}" in text
    assert "✅ Using upcoming_player_game_context: 18 players" in text


@pytest.mark.safeguard
def test_defensive_log_block_names_both_sources_and_coverage(empty_wh, local_params, caplog_info):
    make_league(empty_wh, local_params.tables, {D1: 20}, upcg={D1: 1})
    result = run_backfill(empty_wh, local_params, D1, D1, allow_partial_context=True)
    block = [
        f"📊 Data source check for {D1}:",
        "   - upcoming_player_game_context (UPCG): 1 players",
        "   - player_game_summary (PGS): 20 players",
        "   - Coverage: 5.0%",
        f"🔄 TRIGGERING FALLBACK for {D1}:",
        f"✓ {D1}: 20 players",
    ]
    for line in block:
        assert line in caplog_info.messages
        assert line in result.log_lines


# -- the fixes ----------------------------------------------------------------------------------
@pytest.mark.safeguard
def test_preflight_stops_on_partial_upcg_naming_dates_and_changes_nothing(
    empty_wh, local_params, caplog_info
):
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20, D2: 20}, upcg={D1: 1, D2: 10})
    with pytest.raises(PreflightFailedError) as err:
        run_backfill(empty_wh, local_params, D1, D2)
    assert {str(i["game_date"]) for i in err.value.issues} == {str(D1), str(D2)}
    assert "UPCG 1/20 PGS" in str(err.value)
    assert pcf_counts(empty_wh, t) == {} and metadata(empty_wh, t).empty
    assert "❌ Pre-flight check failed. Aborting backfill." in caplog_info.text
    assert "⚠️  PRE-FLIGHT CHECK FOUND ISSUES" in caplog_info.text


@pytest.mark.safeguard
def test_dates_list_keeps_the_preflight_and_bootstrap_skip(empty_wh, local_params):
    make_league(empty_wh, local_params.tables, {D1: 20, D2: 20}, upcg={D2: 3})
    with pytest.raises(PreflightFailedError):
        run_backfill(empty_wh, local_params, dates=f"{D1},{D2}")
    result = run_backfill(empty_wh, local_params, dates=[BOOT_DAY, D1])
    assert {str(o.game_date): o.status for o in result.outcomes} == {
        str(BOOT_DAY): "SKIPPED",
        str(D1): "COMPLETE",
    }


@pytest.mark.safeguard
def test_failed_validation_raises_records_metadata_and_publishes_nothing(
    empty_wh, local_params, short_build
):
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20, D2: 20})
    short_build["n"] = 10
    with pytest.raises(CoverageValidationError) as err:
        run_backfill(empty_wh, local_params, D1, D2)
    assert set(err.value.failed) == {str(D1), str(D2)}
    assert pcf_counts(empty_wh, t) == {}
    meta = metadata(empty_wh, t)
    assert list(meta["status"]) == ["FAILED", "FAILED"]
    assert list(meta["coverage_pct"]) == [50.0, 50.0]
    staged = empty_wh.row_count(t.id(PCF_STAGING))
    assert staged == 0, "the run's staging rows are deleted"


@pytest.mark.safeguard
def test_resume_skips_successful_dates_and_retries_failed_ones(
    empty_wh, local_params, short_build, caplog_info
):
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20, D2: 20, D3: 20})
    short_build.update(n=10, dates={D2})
    with pytest.raises(CoverageValidationError) as err:
        run_backfill(empty_wh, local_params, D1, D3)
    assert set(err.value.failed) == {str(D2)}
    assert pcf_counts(empty_wh, t) == {str(D1): 20, str(D3): 20}
    short_build.update(n=None)
    result = run_backfill(empty_wh, local_params, D1, D3)
    assert [str(o.game_date) for o in result.outcomes] == [str(D2)]
    assert "2 dates already successful, retrying 1 failed dates" in caplog_info.text
    assert pcf_counts(empty_wh, t) == {str(D1): 20, str(D2): 20, str(D3): 20}
    state = json.loads(open(result.checkpoint_path).read())
    assert set(state["successful_dates"]) == {str(D1), str(D2), str(D3)}
    assert state["failed_dates"] == {}
    meta = metadata(empty_wh, t)
    assert list(meta["status"]) == ["COMPLETE", "FAILED", "COMPLETE", "COMPLETE"]


@pytest.mark.safeguard
def test_resume_reprocesses_a_successful_date_whose_pcf_rows_are_gone(
    empty_wh, local_params, caplog_info
):
    """A checkpoint says done, the warehouse says otherwise: the warehouse wins."""
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20, D2: 20})
    run_backfill(empty_wh, local_params, D1, D2)
    empty_wh.execute(f"DELETE FROM {t.pcf.sql} WHERE game_date = @d", {"d": D1})
    result = run_backfill(empty_wh, local_params, D1, D2)
    assert [str(o.game_date) for o in result.outcomes] == [str(D1)]
    assert f"Checkpoint says {D1} succeeded with 20 players but PCF holds 0" in caplog_info.text
    assert pcf_counts(empty_wh, t) == {str(D1): 20, str(D2): 20}


def test_checkpoint_file_stores_each_failed_dates_error(empty_wh, local_params, short_build):
    make_league(empty_wh, local_params.tables, {D1: 20})
    short_build["n"] = 5
    with pytest.raises(CoverageValidationError):
        run_backfill(empty_wh, local_params, D1, D1)
    with pytest.raises(CoverageValidationError) as err:
        run_backfill(empty_wh, local_params, D1, D1)
    path = local_params.warehouse_path.parent / "checkpoints"
    (file,) = path.glob("*.json")
    failed = json.loads(file.read_text())["failed_dates"][str(D1)]
    assert failed["error"] == "Coverage validation failed: 5/20 players (25.0%)"
    assert failed["attempts"] == 2
    assert str(D1) in str(err.value)


def test_force_publishes_partial_dates_with_a_loud_warning(
    empty_wh, local_params, short_build, caplog_info
):
    make_league(empty_wh, local_params.tables, {D1: 20}, upcg={D1: 2})
    short_build["n"] = 5
    result = run_backfill(empty_wh, local_params, D1, D1, force=True)
    assert result.outcome(D1).status == "INCOMPLETE"
    assert pcf_counts(empty_wh, local_params.tables) == {str(D1): 5}
    assert "⚠️  FORCE MODE ENABLED - Coverage validation will be skipped!" in caplog_info.text


@pytest.mark.parametrize(
    "start,end,problem",
    [
        (D2, D1, "after end date"),
        ("2023-02-30", D2, "is not a date"),
        (D1, dt.date(2025, 4, 11), "in the future"),
        (dt.date(2019, 1, 1), D1, "more than backfill.max_range_days"),
    ],
)
def test_bad_date_input_is_refused_and_changes_nothing(empty_wh, local_params, start, end, problem):
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20, D2: 20})
    with pytest.raises(DateRangeError, match=problem):
        run_backfill(empty_wh, local_params, start, end)
    assert pcf_counts(empty_wh, t) == {} and metadata(empty_wh, t).empty
    assert not (local_params.warehouse_path.parent / "checkpoints").exists()


def test_dry_run_reports_decisions_and_changes_nothing(empty_wh, local_params):
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20, D2: 20}, upcg={D1: 1})
    result = run_backfill(empty_wh, local_params, D1, D2, dry_run=True)
    assert [(o.status, o.decision, o.expected) for o in result.outcomes] == [
        ("WOULD_BUILD", FALLBACK, 20),
        ("WOULD_BUILD", FALLBACK, 20),
    ]
    assert result.preflight_issues and pcf_counts(empty_wh, t) == {}
    assert metadata(empty_wh, t).empty
    assert not (local_params.warehouse_path.parent / "checkpoints").exists()


def test_parallel_workers_publish_the_same_rows_as_one_worker(empty_wh, local_params):
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20, D2: 21, D3: 22, D4: 23})
    result = run_backfill(empty_wh, local_params, D1, D4, workers=2)
    assert pcf_counts(empty_wh, t) == {str(D1): 20, str(D2): 21, str(D3): 22, str(D4): 23}
    meta = metadata(empty_wh, t)
    assert len(meta) == 4 and set(meta["run_id"]) == {result.run_id}


def test_bootstrap_dates_are_skipped_and_recorded(empty_wh, local_params):
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20})
    result = run_backfill(empty_wh, local_params, SEASON_START, EMPTY_DAY - dt.timedelta(days=1))
    skipped = {str(o.game_date) for o in result.skipped}
    assert {str(SEASON_START), str(BOOT_DAY)} <= skipped
    assert str(BOOT_DAY) not in pcf_counts(empty_wh, t)


# -- the incident replay on the seeded league ---------------------------------------------------
INCIDENT = (dt.date(2023, 2, 23), dt.date(2023, 2, 24))


def test_incident_replay_stops_at_the_preflight_naming_both_dates(seeded_wh, local_params):
    t = local_params.tables
    before = seeded_wh.row_count(t.pcf)
    with pytest.raises(PreflightFailedError) as err:
        run_backfill(seeded_wh, local_params, *INCIDENT)
    issues = {str(i["game_date"]): (i["upcg_players"], i["pgs_players"]) for i in err.value.issues}
    assert issues == {"2023-02-23": (1, 187), "2023-02-24": (68, 175)}
    assert seeded_wh.row_count(t.pcf) == before


def test_incident_replay_with_allow_partial_context_writes_187_and_175(seeded_wh, local_params):
    result = run_backfill(seeded_wh, local_params, *INCIDENT, allow_partial_context=True)
    got = {str(o.game_date): (o.actual, o.expected, o.decision) for o in result.outcomes}
    assert got == {"2023-02-23": (187, 187, FALLBACK), "2023-02-24": (175, 175, FALLBACK)}
    counts = pcf_counts(seeded_wh, local_params.tables)
    assert (counts["2023-02-23"], counts["2023-02-24"]) == (187, 175)


# -- the command line ---------------------------------------------------------------------------
@pytest.fixture
def cli_wh(tmp_path, monkeypatch):
    """A small league in the warehouse the `local` params resolve to under a temporary root."""
    from runbook_lib import paths
    from runbook_lib.platform.schema import ALL_TABLES
    from runbook_lib.run.params import load_params
    from runbook_lib.warehouse import connect

    monkeypatch.setattr(paths, "ROOT", tmp_path)
    params = load_params("local")
    wh = connect(params)
    with wh.session():
        for schema in ALL_TABLES:
            wh.ensure_table(params.tables.id(schema), schema)
    make_league(wh, params.tables, {D1: 20, D2: 20}, upcg={D2: 3})
    return wh, params


def test_cli_exits_1_on_preflight_failure_and_0_when_every_date_passes(cli_wh, capsys):
    from runbook_lib.cli import main

    wh, params = cli_wh
    args = ["backfill", "--env", "local", "--start-date", str(D1), "--end-date", str(D2)]
    assert main(args) == 1
    assert "pre-flight coverage check found partial UPCG" in capsys.readouterr().err
    assert pcf_counts(wh, params.tables) == {}
    assert main([*args, "--allow-partial-context"]) == 0
    assert pcf_counts(wh, params.tables) == {str(D1): 20, str(D2): 20}
    assert main([*args, "--status"]) == 0
    assert "successful 2, failed 0" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra",
    [
        ["--start-date", "2023-02-21", "--end-date", "2023-02-20"],
        ["--start-date", "yesterday", "--end-date", "2023-02-20"],
        ["--dates", "2023-02-20,2099-01-01"],
        ["--start-date", "2023-02-20", "--end-date", "2023-02-21", "--workers", "0"],
    ],
)
def test_cli_exits_2_on_bad_input_and_changes_nothing(cli_wh, extra):
    from runbook_lib.cli import main

    wh, params = cli_wh
    assert main(["backfill", "--env", "local", *extra]) == 2
    assert pcf_counts(wh, params.tables) == {} and metadata(wh, params.tables).empty


# -- contract: the same statements on DuckDB and on BigQuery (bqemulator) -----------------------
def test_factors_validate_and_merge_run_on_both_backends(warehouse, tmp_path):
    from runbook_lib.run.params import load_params

    wh, t = warehouse.wh, warehouse.tables
    params = load_params(
        "local",
        {
            "project": wh.project,
            "today": "2025-04-10",
            "backfill.checkpoint_dir": str(tmp_path / "cp"),
        },
    )
    make_league(wh, t, {D1: 20, D2: 20, D3: 20}, upcg={D1: 1, D3: 19})
    result = run_backfill(wh, params, D1, D3, allow_partial_context=True, workers=1)
    assert [(o.decision, o.actual, o.status) for o in result.outcomes] == [
        (FALLBACK, 20, "COMPLETE"),
        (FALLBACK, 20, "COMPLETE"),
        (UPCG, 19, "COMPLETE"),
    ]
    assert pcf_counts(wh, t) == {str(D1): 20, str(D2): 20, str(D3): 19}
    pcf = wh.query(
        f"SELECT fatigue_score, usage_spike_score FROM {t.pcf.sql} "
        f"WHERE game_date = @d AND player_lookup = 'p000'",
        {"d": D3},
    )
    assert int(pcf["fatigue_score"].iloc[0]) == 100
    assert wh.row_count(t.id(PCF_STAGING)) == 0
    assert list(metadata(wh, t)["status"]) == ["COMPLETE"] * 3
    # A rerun updates the same keys instead of duplicating them.
    run_backfill(wh, params, D1, D3, allow_partial_context=True, resume=False, workers=1)
    assert pcf_counts(wh, t) == {str(D1): 20, str(D2): 20, str(D3): 19}


# -- reviewer findings ----------------------------------------------------------------------------
def test_validation_counts_only_staged_players_that_are_pgs_players(empty_wh, local_params):
    """Validation compares player sets: staged players absent from PGS add no coverage."""
    t = local_params.tables
    load(empty_wh, t.pgs, [pgs_row(p, D1) for p in players(20)])
    staged = players(17) + players(5, prefix="x")  # 17 PGS players plus 5 strangers
    load(
        empty_wh,
        t.id(PCF_STAGING),
        [{"player_lookup": p, "game_date": D1, "game_id": "g", "run_id": "r1"} for p in staged],
    )
    ctx = ChunkContext(empty_wh, local_params.tables, local_params.backfill, "r1")
    (o,) = validate_staged(ctx, [D1], {D1: PlayerCounts(20, 22)}, {D1: UPCG})
    assert (o.expected, o.actual, o.status) == (20, 17, "FAILED")
    assert o.coverage_pct == pytest.approx(85.0)


def test_coverage_never_exceeds_100_percent_with_extra_staged_players(empty_wh, local_params):
    t = local_params.tables
    load(empty_wh, t.pgs, [pgs_row(p, D1) for p in players(20)])
    staged = players(20) + players(3, prefix="x")
    load(
        empty_wh,
        t.id(PCF_STAGING),
        [{"player_lookup": p, "game_date": D1, "game_id": "g", "run_id": "r1"} for p in staged],
    )
    ctx = ChunkContext(empty_wh, local_params.tables, local_params.backfill, "r1")
    (o,) = validate_staged(ctx, [D1], {D1: PlayerCounts(20, 23)}, {D1: UPCG})
    assert (o.actual, o.coverage_pct, o.status) == (20, 100.0, "COMPLETE")


def test_allow_partial_context_logs_preflight_issues_as_handled_warnings(
    empty_wh, local_params, caplog_info
):
    make_league(empty_wh, local_params.tables, {D1: 20}, upcg={D1: 1})
    run_backfill(empty_wh, local_params, D1, D1, allow_partial_context=True)
    header = [r for r in caplog_info.records if "PRE-FLIGHT CHECK FOUND ISSUES" in r.message]
    assert [r.levelno for r in header] == [logging.WARNING]
    assert "handled by the PGS fallback (--allow-partial-context)" in caplog_info.text
    assert "RECOMMENDED ACTIONS" not in caplog_info.text
    assert "rerun with --allow-partial-context" not in caplog_info.text


def test_rerun_does_not_rewrite_metadata_of_dates_already_skipped(empty_wh, local_params):
    """Bootstrap dates recorded SKIPPED get one metadata row, not one per rerun."""
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20})
    first = run_backfill(empty_wh, local_params, SEASON_START, EMPTY_DAY - dt.timedelta(days=1))
    run_backfill(empty_wh, local_params, D1, D1)
    skipped = {o.game_date for o in first.skipped}
    assert {SEASON_START, BOOT_DAY} <= skipped
    again = run_backfill(empty_wh, local_params, SEASON_START, EMPTY_DAY - dt.timedelta(days=1))
    assert again.outcomes == [] and set(again.already_skipped) == skipped
    meta = metadata(empty_wh, t)
    assert meta.groupby("analysis_date").size().max() == 1
    assert len(meta) == len(skipped) + 1


@pytest.mark.safeguard
def test_a_scheduled_game_day_with_no_box_scores_fails_the_run_and_is_retried(empty_wh, local_params):
    """Issue 11: the original skipped it as an off-day and exited 0; once PGS arrives, a rerun repairs it."""
    t = local_params.tables
    make_league(empty_wh, t, {D1: 20})
    with pytest.raises(CoverageValidationError) as err:
        run_backfill(empty_wh, local_params, EMPTY_DAY, D1)
    assert list(err.value.failed) == [str(EMPTY_DAY)]
    assert pcf_counts(empty_wh, t) == {str(D1): 20}
    failed = metadata(empty_wh, t).query("status == 'FAILED'")
    assert [str(d) for d in failed["analysis_date"]] == [str(EMPTY_DAY)]
    load(empty_wh, t.pgs, [pgs_row(p, EMPTY_DAY) for p in players(12)])
    again = run_backfill(empty_wh, local_params, EMPTY_DAY, D1)
    assert [(o.game_date, o.status) for o in again.outcomes] == [(EMPTY_DAY, "COMPLETE")]
    assert pcf_counts(empty_wh, t)[str(EMPTY_DAY)] == 12


def test_log_names_extracted_upcg_records_and_the_original_summary_banner(empty_wh, local_params):
    make_league(empty_wh, local_params.tables, {D1: 20, D2: 20}, upcg={D2: 19})
    result = run_backfill(empty_wh, local_params, D1, D2)
    lines = result.log_lines
    assert "Extracted 0 player context records from upcoming_player_game_context" in lines
    assert "Extracted 19 player context records from upcoming_player_game_context" in lines
    assert "PHASE 4 BACKFILL SUMMARY - PlayerCompositeFactorsProcessor:" in lines


def test_a_failed_chunk_build_says_the_whole_chunk_failed_and_a_rerun_retries(
    empty_wh, local_params, monkeypatch
):
    make_league(empty_wh, local_params.tables, {D1: 20, D2: 20})

    def broken(*args):
        raise RuntimeError("quota exceeded")

    monkeypatch.setattr(backfill_chunk, "build_staging", broken)
    with pytest.raises(CoverageValidationError) as err:
        run_backfill(empty_wh, local_params, D1, D2, workers=1)
    for error in err.value.failed.values():
        assert "whole chunk of 2 dates" in error and "quota exceeded" in error
        assert "rerun retries" in error
    monkeypatch.undo()
    again = run_backfill(empty_wh, local_params, D1, D2)
    assert [o.status for o in again.outcomes] == ["COMPLETE", "COMPLETE"]


def test_cli_rerun_of_a_finished_range_prints_nothing_left_to_do_and_exits_0(cli_wh, capsys):
    from runbook_lib.cli import main

    args = ["backfill", "--env", "local", "--start-date", str(D1), "--end-date", str(D2)]
    assert main([*args, "--allow-partial-context"]) == 0
    capsys.readouterr()
    assert main([*args, "--allow-partial-context"]) == 0
    out = capsys.readouterr().out
    assert "nothing left to do" in out and "2 already successful" in out


def test_cli_date_without_games_prints_nothing_left_to_do_and_exits_0(cli_wh, capsys):
    from runbook_lib.cli import main

    assert main(["backfill", "--env", "local", "--dates", "2023-03-01"]) == 0
    out = capsys.readouterr().out
    assert "nothing left to do" in out and "1 without games" in out


def test_cli_dry_run_says_no_checkpoint_was_written(cli_wh, capsys):
    from runbook_lib.cli import main

    args = ["--start-date", str(D1), "--end-date", str(D2), "--dry-run"]
    assert main(["backfill", "--env", "local", *args]) == 0
    out = capsys.readouterr().out
    assert "(dry run: no checkpoint written)" in out and "checkpoint: /" not in out
