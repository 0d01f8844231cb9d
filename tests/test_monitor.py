"""The daily monitor: four checks from the data itself, on both backends; alerts, dedup, exit codes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pandas as pd
import pytest

from runbook_lib.platform import monitor, monitor_sql, monitoring
from tests.conftest import RUNBOOK_PROCESS
from tests.test_factors import load, pgs_row, upcg_row

TODAY = dt.date(2025, 4, 10)
DAY = TODAY - dt.timedelta(days=1)  # what the monitor checks first: yesterday
OPENER = dt.date(2024, 10, 22)  # the season's first game, outside the window
GAME_DAYS = [dt.date(2025, 4, d) for d in (1, 2, 3, 4, 6, 7, 8, 9)]
OFF_DAY = dt.date(2025, 4, 5)
LOST = dt.date(2025, 4, 3)
PLAYERS = [f"p{i:02d}" for i in range(10)]
SETTINGS = monitor_sql.MonitorSettings(
    window_days=30, threshold_pct=90.0, bootstrap_days=14, ttl_days=7
)


def schedule_row(day: dt.date) -> dict:
    """Return one Regular Season game of the 2024 season on `day`."""
    return {
        "game_id": f"{day:%Y%m%d}_CLE_DEN",
        "nba_game_id": f"0022{day:%m%d}",
        "game_date": day,
        "season_year": 2024,
        "home_team_abbr": "DEN",
        "away_team_abbr": "CLE",
        "game_type": "Regular Season",
    }


def pcf_row(player: str, day: dt.date) -> dict:
    """Return one published PCF row."""
    return {
        "player_lookup": player,
        "game_date": day,
        "game_id": f"{day:%Y%m%d}_CLE_DEN",
        "analysis_date": day,
    }


def metadata_row(day: dt.date, run_id: str = "nightly") -> dict:
    """Return one COMPLETE metadata row, as the nightly backfill writes it."""
    return {
        "analysis_date": day,
        "expected_players": 10,
        "actual_players": 10,
        "coverage_pct": 100.0,
        "status": "COMPLETE",
        "tracked_at": pd.Timestamp(f"{day} 09:00", tz="UTC"),
        "run_id": run_id,
    }


def healthy_league(wh, t) -> None:
    """Load a league whose last 30 days are fully backfilled, with no stale upcoming rows."""
    load(wh, t.schedule, [schedule_row(d) for d in [OPENER, *GAME_DAYS]])
    load(wh, t.pgs, [pgs_row(p, d) for d in GAME_DAYS for p in PLAYERS])
    load(wh, t.pcf, [pcf_row(p, d) for d in GAME_DAYS for p in PLAYERS])
    load(wh, t.backfill_metadata, [metadata_row(d) for d in GAME_DAYS])
    load(wh, t.upcg, [upcg_row(p, TODAY + dt.timedelta(days=1)) for p in PLAYERS])


def plant_four_problems(wh, t) -> None:
    """Lose 4 PCF rows of LOST, yesterday's metadata row, the box scores of a game, and the cleanup."""
    wh.execute(
        f"DELETE FROM {t.pcf.sql} WHERE game_date = @d AND player_lookup IN UNNEST(@p)",
        {"d": LOST, "p": PLAYERS[:4]},
    )
    wh.execute(f"DELETE FROM {t.backfill_metadata.sql} WHERE analysis_date = @d", {"d": DAY})
    load(wh, t.schedule, [schedule_row(OFF_DAY)])
    load(wh, t.upcg, [upcg_row("p00", dt.date(2025, 3, 1))])


def test_a_healthy_window_should_pass_all_four_checks_on_both_backends(warehouse):
    healthy_league(warehouse.wh, warehouse.tables)
    result = monitor.check(warehouse.wh, warehouse.tables, SETTINGS, TODAY, "local")
    assert result.healthy and result.game_dates == len(GAME_DAYS)
    assert result.headline().startswith("HEALTHY: 4 checks over 8 game dates")


def test_each_check_should_catch_its_problem_from_the_data_on_both_backends(warehouse):
    wh, t = warehouse.wh, warehouse.tables
    healthy_league(wh, t)
    plant_four_problems(wh, t)
    result = monitor.check(wh, t, SETTINGS, TODAY, "local")
    assert [p.key for p in result.problems] == [
        f"no_backfill:{DAY}",
        f"low_coverage:{LOST}",
        f"no_box_scores:{OFF_DAY}",
        "stale_upcoming:nba_analytics.upcoming_player_game_context",
    ]
    texts = [p.summary for p in result.problems]
    assert texts[0] == f"{DAY}: no backfill ran (no metadata row; PCF holds 10 of 10 PGS players)"
    assert texts[1] == f"{LOST}: PCF holds 6 of 10 PGS players (60.0% coverage)"
    assert texts[3].endswith(": 1 stale upcoming rows (the TTL cleanup did not run)")
    assert result.problems[1].repair == (
        f"runbook backfill --env local --start-date {LOST} --end-date {LOST}"
    )


def test_the_dashboard_still_said_complete_where_the_data_check_finds_lost_rows(warehouse):
    """Issue 11: the metadata dashboard showed 100% COMPLETE for a date that lost PCF rows."""
    wh, t = warehouse.wh, warehouse.tables
    healthy_league(wh, t)
    plant_four_problems(wh, t)
    meta = wh.query(
        f"SELECT status FROM {t.backfill_metadata.sql} WHERE analysis_date = @d", {"d": LOST}
    )
    assert meta["status"].tolist() == ["COMPLETE"]
    evidence = monitor.check(wh, t, SETTINGS, TODAY, "local").evidence
    row = evidence[evidence["game_date"].astype(str) == str(LOST)].iloc[0]
    assert (row.pgs_players, row.pcf_players, row.metadata_status) == (10, 6, "COMPLETE")


def test_bootstrap_days_and_off_days_should_not_alert(empty_wh, local_params):
    t = local_params.tables
    opener = TODAY - dt.timedelta(days=5)  # the season began 5 days ago: all in bootstrap
    load(
        empty_wh,
        t.schedule,
        [{**schedule_row(opener), "season_year": 2025}, {**schedule_row(DAY), "season_year": 2025}],
    )
    load(empty_wh, t.pgs, [pgs_row(p, d) for d in (opener, DAY) for p in PLAYERS])
    load(empty_wh, t.backfill_metadata, [metadata_row(DAY)])
    result = monitor.check(empty_wh, t, SETTINGS, TODAY, "local")
    assert result.healthy, result.to_frame()


def test_alerts_should_be_slack_messages_sent_once_per_problem_per_day(empty_wh, local_params):
    t = local_params.tables
    healthy_league(empty_wh, t)
    plant_four_problems(empty_wh, t)
    with monitoring.local_receiver() as receiver:
        first = monitor.alert(
            empty_wh, t, monitor.check(empty_wh, t, SETTINGS, TODAY, "local"), receiver
        )
        again = monitor.alert(
            empty_wh, t, monitor.check(empty_wh, t, SETTINGS, TODAY, "local"), receiver
        )
    assert len(first.sent) == 4 and again.sent == [] and len(again.already_alerted) == 4
    assert receiver.received_count() == 4
    texts = [m["text"] for m in receiver.received]
    assert all(m["blocks"][0]["type"] == "section" for m in receiver.received)
    assert any(
        f"{LOST}: PCF holds 6 of 10 PGS players (60.0% coverage)" in x
        and f"`runbook backfill --env local --start-date {LOST} --end-date {LOST}`" in x
        for x in texts
    )
    rows = empty_wh.query(f"SELECT alert_key, http_status FROM {t.monitor_alerts.sql}")
    assert sorted(rows["alert_key"]) == sorted(first.sent)
    assert set(rows["http_status"]) == {200}


def test_an_undelivered_alert_should_not_count_as_sent_and_goes_out_next_run(
    empty_wh, local_params
):
    t = local_params.tables
    healthy_league(empty_wh, t)
    plant_four_problems(empty_wh, t)
    with monitoring.local_receiver() as gone:
        url = gone.url
    lost = monitor.alert(
        empty_wh, t, monitor.check(empty_wh, t, SETTINGS, TODAY, "local"), monitoring.Webhook(url)
    )
    assert len(lost.undelivered) == 4 and lost.sent == []
    with monitoring.local_receiver() as receiver:
        later = monitor.alert(
            empty_wh, t, monitor.check(empty_wh, t, SETTINGS, TODAY, "local"), receiver
        )
    assert len(later.sent) == 4 and receiver.received_count() == 4


def test_the_views_should_answer_as_the_monitor_does_on_both_backends(warehouse):
    wh, t = warehouse.wh, warehouse.tables
    healthy_league(wh, t)
    plant_four_problems(wh, t)
    names = monitor.create_views(wh, t, SETTINGS, TODAY)
    monitor.create_views(wh, t, SETTINGS, TODAY)  # CREATE OR REPLACE: a rerun changes nothing
    assert names == [
        "nba_orchestration.backfill_coverage_monitor",
        "nba_orchestration.backfill_coverage_alerts",
    ]
    board = wh.query(f"SELECT * FROM {t.view(monitor_sql.DASHBOARD_VIEW).sql}")
    alerts = wh.query(f"SELECT * FROM {t.view(monitor_sql.ALERT_VIEW).sql}")
    assert len(board) == len(GAME_DAYS) + 1  # the planted game day is scheduled too
    assert sorted(alerts["check_name"]) == sorted(monitor_sql.CHECKS)


def _cli(tmp_params_dir, *args):
    return subprocess.run(
        [*RUNBOOK_PROCESS, "monitor", "--env", "local", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli_wh(tmp_params_dir, empty_file):
    """The warehouse the `runbook` processes of tmp_params_dir use, every table created, empty."""
    import shutil

    from runbook_lib.run.params import load_params
    from runbook_lib.warehouse import connect

    params = load_params("local")
    params.warehouse_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_file, params.warehouse_path / empty_file.name)
    return connect(params), params.tables


def test_runbook_monitor_should_exit_0_when_healthy_and_1_when_alerting(cli_wh, tmp_params_dir):
    wh, t = cli_wh
    healthy_league(wh, t)
    ok = _cli(tmp_params_dir, "--no-alert")
    assert ok.returncode == 0, ok.stderr
    assert "HEALTHY: 4 checks over 8 game dates" in ok.stdout
    plant_four_problems(wh, t)
    bad = _cli(tmp_params_dir, "--no-alert")
    assert bad.returncode == 1, bad.stderr
    assert "ALERTING: 4 problem(s)" in bad.stdout
    assert f"runbook backfill --env local --start-date {LOST} --end-date {LOST}" in bad.stdout


def test_runbook_monitor_should_refuse_a_bad_date_with_exit_2(cli_wh, tmp_params_dir):
    got = _cli(tmp_params_dir, "--date", "2025-13-01")
    assert got.returncode == 2 and "is not a date" in got.stderr


def test_runbook_monitor_should_record_each_run_and_alert_once_per_day(cli_wh, tmp_params_dir):
    wh, t = cli_wh
    healthy_league(wh, t)
    plant_four_problems(wh, t)
    with monitoring.local_receiver() as receiver:
        local = tmp_params_dir / "local.yaml"
        local.write_text(
            local.read_text().replace("webhook_url: null", f"webhook_url: {receiver.url}")
        )
        for _ in range(2):
            got = _cli(tmp_params_dir)
            assert got.returncode == 1, got.stderr
    assert receiver.received_count() == 4
    # Each alert names whom to call (params contacts; the OS user on local), issue 13.3.
    assert all(m["text"].splitlines()[-1].startswith("Contacts: on-call ") for m in receiver.received)
    runs = wh.query(f"SELECT problems, alerts_sent, problem_keys FROM {t.monitor_runs.sql}")
    assert runs["problems"].tolist() == [4, 4] and runs["alerts_sent"].tolist() == [4, 0]
    assert f"low_coverage:{LOST}" in json.loads(runs["problem_keys"][0])


def test_alerts_past_the_cap_should_go_out_as_one_message_that_counts_them(empty_wh, local_params):
    """A first deployment over an empty PCF history has hundreds of problems, not hundreds of pings."""
    t = local_params.tables
    healthy_league(empty_wh, t)
    plant_four_problems(empty_wh, t)
    result = monitor.check(empty_wh, t, SETTINGS, TODAY, "local")
    with monitoring.local_receiver() as receiver:
        monitor.alert(empty_wh, t, result, receiver, max_messages=2)
    assert receiver.received_count() == 2 and len(result.sent) == 4
    assert "3 more problem(s)" in receiver.received[0]["text"]
    assert "runbook monitor --env local --no-alert" in receiver.received[0]["text"]
