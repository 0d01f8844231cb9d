"""Monitoring: the runbook's coverage SQL, the dashboard, the alert through a real channel."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from runbook_lib.platform import monitoring, webhook

D1, D2 = dt.date(2023, 2, 23), dt.date(2023, 2, 25)


def _pgs(players_by_date: dict) -> pd.DataFrame:
    rows = [
        {"player_lookup": f"p{i}", "game_id": f"{d:%Y%m%d}_AAA_BBB", "game_date": d,
         "team_abbr": "AAA", "opponent_team_abbr": "BBB", "season_year": 2022,
         "starter_flag": False, "win_flag": True, "is_active": True}
        for d, n in players_by_date.items() for i in range(n)
    ]
    df = pd.DataFrame(rows)
    df["game_date"] = df["game_date"].astype("dbdate")
    return df


def _pcf(players_by_date: dict) -> pd.DataFrame:
    rows = [
        {"player_lookup": f"p{i}", "game_id": "g", "game_date": d, "analysis_date": d}
        for d, n in players_by_date.items() for i in range(n)
    ]
    df = pd.DataFrame(rows)
    for c in ("game_date", "analysis_date"):
        df[c] = df[c].astype("dbdate")
    return df


def _metadata(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(
        [{"analysis_date": d, "expected_players": e, "actual_players": a,
          "coverage_pct": round(a / e * 100, 2), "status": s,
          "tracked_at": pd.Timestamp(t, tz="UTC"), "run_id": r}
         for d, e, a, s, t, r in rows]
    )
    df["analysis_date"] = df["analysis_date"].astype("dbdate")
    return df


def test_coverage_sql_should_count_expected_from_pgs_and_actual_from_pcf(empty_wh, local_params):
    t = local_params.tables
    empty_wh.load_dataframe(t.pgs, _pgs({D1: 187, D2: 180}))
    empty_wh.load_dataframe(t.pcf, _pcf({D1: 1, D2: 180}))
    got = monitoring.coverage_for_dates(empty_wh, t, [D1, D2])
    assert got["expected"].tolist() == [187, 180]
    assert got["actual"].tolist() == [1, 180]
    assert got["coverage_pct"].tolist() == [0.5, 100.0]


def test_dashboard_should_show_the_latest_run_of_each_date_in_the_window(empty_wh, local_params):
    t, today = local_params.tables, dt.date(2025, 4, 10)
    empty_wh.load_dataframe(t.backfill_metadata, _metadata([
        (dt.date(2025, 4, 9), 180, 90, "FAILED", "2025-04-10 01:00", "old"),
        (dt.date(2025, 4, 9), 180, 180, "COMPLETE", "2025-04-10 02:00", "new"),
        (dt.date(2025, 3, 1), 180, 180, "COMPLETE", "2025-03-02 02:00", "outside"),
    ]))
    board = monitoring.dashboard(empty_wh, t, today, 30)
    assert board["run_id"].tolist() == ["new"]


def test_alert_should_reach_a_real_receiver_when_yesterday_is_below_threshold(empty_wh, local_params):
    t, today = local_params.tables, dt.date(2025, 4, 10)
    empty_wh.load_dataframe(t.backfill_metadata, _metadata([
        (dt.date(2025, 4, 9), 187, 1, "FAILED", "2025-04-10 01:00", "r1"),
    ]))
    with monitoring.alert_channel(None, is_local=True) as channel:
        result = monitoring.alert_on_incomplete(empty_wh, t, today, channel, 90.0)
        assert result.sent and result.status == 200 and result.incomplete == 1
        assert channel.received_count() == 1
        assert channel.received[0]["dates"][0]["actual_players"] == "1"


def test_alert_should_not_fire_when_coverage_is_complete(empty_wh, local_params):
    t, today = local_params.tables, dt.date(2025, 4, 10)
    empty_wh.load_dataframe(t.backfill_metadata, _metadata([
        (dt.date(2025, 4, 9), 180, 180, "COMPLETE", "2025-04-10 01:00", "r1"),
    ]))
    with monitoring.alert_channel(None, is_local=True) as channel:
        result = monitoring.alert_on_incomplete(empty_wh, t, today, channel, 90.0)
        assert not result.sent and channel.received_count() == 0


def test_the_alert_sender_should_fail_loudly_when_nobody_listens():
    with monitoring.local_receiver() as receiver:
        url = receiver.url
    with pytest.raises(OSError):
        webhook.send_alert(url, {"x": 1}, timeout=2)


def test_monitoring_sql_should_give_the_same_answers_on_both_backends(warehouse):
    wh, t, today = warehouse.wh, warehouse.tables, dt.date(2025, 4, 10)
    wh.load_dataframe(t.pgs, _pgs({D1: 187, D2: 180}))
    wh.load_dataframe(t.pcf, _pcf({D1: 1, D2: 180}))
    wh.load_dataframe(t.backfill_metadata, _metadata([
        (dt.date(2025, 4, 9), 187, 1, "FAILED", "2025-04-10 01:00", "r1"),
        (dt.date(2025, 4, 8), 180, 180, "COMPLETE", "2025-04-09 01:00", "r1"),
    ]))
    got = monitoring.coverage_for_dates(wh, t, [D1, D2])
    assert got["coverage_pct"].tolist() == [0.5, 100.0]
    assert len(monitoring.dashboard(wh, t, today, 30)) == 2
    alerts = monitoring.incomplete_dates(wh, t, today, 90.0)
    assert [str(d) for d in alerts["analysis_date"]] == ["2025-04-09"]


def test_a_cloud_environment_without_a_webhook_should_get_no_channel_not_a_local_one(empty_wh, local_params):
    t, today = local_params.tables, dt.date(2025, 4, 10)
    empty_wh.load_dataframe(t.backfill_metadata, _metadata([
        (dt.date(2025, 4, 9), 187, 1, "FAILED", "2025-04-10 01:00", "r1"),
    ]))
    with monitoring.alert_channel(None, is_local=False) as channel:
        result = monitoring.alert_on_incomplete(empty_wh, t, today, channel, 90.0)
    assert isinstance(channel, monitoring.NoAlertChannel)
    assert result.incomplete == 1 and not result.sent and channel.received_count() == 0
