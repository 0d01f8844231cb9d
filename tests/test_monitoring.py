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


def test_coverage_sql_should_count_expected_from_pgs_and_actual_from_pcf(empty_wh, local_params):
    t = local_params.tables
    empty_wh.load_dataframe(t.pgs, _pgs({D1: 187, D2: 180}))
    empty_wh.load_dataframe(t.pcf, _pcf({D1: 1, D2: 180}))
    got = monitoring.coverage_for_dates(empty_wh, t, [D1, D2])
    assert got["expected"].tolist() == [187, 180]
    assert got["actual"].tolist() == [1, 180]
    assert got["coverage_pct"].tolist() == [0.5, 100.0]


def test_the_alert_sender_should_fail_loudly_when_nobody_listens():
    with monitoring.local_receiver() as receiver:
        url = receiver.url
    with pytest.raises(OSError):
        webhook.send_alert(url, {"x": 1}, timeout=2)


def test_monitoring_sql_should_give_the_same_answers_on_both_backends(warehouse):
    wh, t = warehouse.wh, warehouse.tables
    wh.load_dataframe(t.pgs, _pgs({D1: 187, D2: 180}))
    wh.load_dataframe(t.pcf, _pcf({D1: 1, D2: 180}))
    got = monitoring.coverage_for_dates(wh, t, [D1, D2])
    assert got["coverage_pct"].tolist() == [0.5, 100.0]


def test_a_cloud_environment_without_a_webhook_should_get_no_channel_not_a_local_one():
    with monitoring.alert_channel(None, is_local=False) as channel:
        status = channel.send({"text": "x"})
    assert isinstance(channel, monitoring.NoAlertChannel)
    assert status is None and channel.received_count() == 0
