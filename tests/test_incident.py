"""The incident replay helpers: plant exactly the stale rows asked for, remove exactly them."""

from __future__ import annotations

import datetime as dt

import pytest

from runbook_lib.errors import DeleteCountMismatchError
from runbook_lib.platform import incident
from tests.test_monitoring import _pgs

D = dt.date(2023, 2, 23)


def test_plant_should_insert_one_upcg_row_from_that_dates_pgs(empty_wh, local_params):
    t = local_params.tables
    empty_wh.load_dataframe(t.pgs, _pgs({D: 187, dt.date(2023, 2, 24): 175}))
    assert incident.plant_stale_context(empty_wh, t, D, 1) == 1
    counts = incident.context_counts(empty_wh, t, [D, dt.date(2023, 2, 24)])
    assert counts["pgs_players"].tolist() == [187, 175]
    assert counts["upcg_rows"].tolist() == [1, 0]


def test_remove_planted_should_refuse_when_more_rows_match_than_planted(empty_wh, local_params):
    t = local_params.tables
    empty_wh.load_dataframe(t.pgs, _pgs({D: 10}))
    incident.plant_stale_context(empty_wh, t, D, 3)
    with pytest.raises(DeleteCountMismatchError):
        incident.remove_planted(empty_wh, t, D, 1)
    assert empty_wh.row_count(t.upcg) == 3
    assert incident.remove_planted(empty_wh, t, D, 3) == 3


def test_incident_should_be_planted_per_date_and_removed_exactly(empty_wh, local_params):
    t = local_params.tables
    d2 = dt.date(2023, 2, 24)
    empty_wh.load_dataframe(t.pgs, _pgs({D: 187, d2: 175}))
    planted = incident.plant_incident(empty_wh, t, {"2023-02-23": 1, "2023-02-24": 68})
    assert planted == {D: 1, d2: 68}
    assert incident.context_counts(empty_wh, t, [D, d2])["upcg_rows"].tolist() == [1, 68]
    assert incident.remove_incident(empty_wh, t, planted) == planted
    assert empty_wh.row_count(t.upcg) == 0
