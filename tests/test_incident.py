"""The incident replay helpers: plant exactly the stale rows asked for, remove exactly them."""

from __future__ import annotations

import datetime as dt

from runbook_lib.platform import incident
from tests.test_monitoring import _pgs

D, D2 = dt.date(2023, 2, 23), dt.date(2023, 2, 24)


def test_plant_should_insert_one_upcg_row_from_that_dates_pgs(empty_wh, local_params):
    t = local_params.tables
    empty_wh.load_dataframe(t.pgs, _pgs({D: 187, D2: 175}))
    assert incident.plant_stale_context(empty_wh, t, D, 1) == ["p0"]
    counts = incident.context_counts(empty_wh, t, [D, D2])
    assert counts["pgs_players"].tolist() == [187, 175]
    assert counts["upcg_rows"].tolist() == [1, 0]


def test_incident_should_be_planted_per_date_and_removed_exactly(empty_wh, local_params):
    t = local_params.tables
    empty_wh.load_dataframe(t.pgs, _pgs({D: 187, D2: 175}))
    planted = incident.plant_incident(empty_wh, t, {"2023-02-23": 1, "2023-02-24": 68})
    assert {d: len(p) for d, p in planted.items()} == {D: 1, D2: 68}
    ok, counts = incident.incident_state(empty_wh, t, {"2023-02-23": 1, "2023-02-24": 68})
    assert ok and counts["upcg_rows"].tolist() == [1, 68]
    assert incident.remove_incident(empty_wh, t, planted) == {D: 1, D2: 68}
    assert empty_wh.row_count(t.upcg) == 0


def test_replay_should_top_up_rows_already_there_and_remove_only_its_own(empty_wh, local_params):
    """Where stale rows survived (a dry-run cleanup), they are counted, not duplicated or deleted."""
    t = local_params.tables
    empty_wh.load_dataframe(t.pgs, _pgs({D: 187, D2: 175}))
    already = incident.plant_incident(empty_wh, t, {"2023-02-23": 1, "2023-02-24": 40})
    planted = incident.plant_incident(empty_wh, t, {"2023-02-23": 1, "2023-02-24": 68})
    assert {d: len(p) for d, p in planted.items()} == {D: 0, D2: 28}
    assert incident.incident_state(empty_wh, t, {"2023-02-23": 1, "2023-02-24": 68})[0]
    assert incident.remove_incident(empty_wh, t, planted) == {D: 0, D2: 28}
    counts = incident.context_counts(empty_wh, t, [D, D2])["upcg_rows"].tolist()
    assert counts == [len(already[D]), len(already[D2])] == [1, 40]


def test_replay_sql_should_run_on_both_backends(warehouse):
    wh, t = warehouse.wh, warehouse.tables
    wh.load_dataframe(t.pgs, _pgs({D: 20, D2: 10}))
    planted = incident.plant_incident(wh, t, {"2023-02-23": 1, "2023-02-24": 6})
    assert incident.incident_state(wh, t, {"2023-02-23": 1, "2023-02-24": 6})[0]
    assert incident.remove_incident(wh, t, planted) == {D: 1, D2: 6}
    assert wh.row_count(t.upcg) == 0
