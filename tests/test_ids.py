"""Identifiers: only plain names reach SQL."""

from __future__ import annotations

import pytest

from runbook_lib.errors import InvalidIdentifierError
from runbook_lib.warehouse.ids import TableId, check_name, check_project


def test_table_id_renders_a_backquoted_reference():
    t = TableId("nba-props-platform", "nba_analytics", "player_game_summary")
    assert t.sql == "`nba-props-platform.nba_analytics.player_game_summary`"
    assert t.short == "nba_analytics.player_game_summary"
    assert str(t.with_table("pgs_backup")) == "nba-props-platform.nba_analytics.pgs_backup"


@pytest.mark.parametrize(
    "name",
    ["x`; DELETE FROM y --", "a.b", "a b", "a-b", "", "1abc", "a`", "t\n", "tab;le", "ü"],
)
def test_a_table_name_that_is_not_a_plain_identifier_is_refused(name):
    with pytest.raises(InvalidIdentifierError) as err:
        TableId("nba-props-platform", "nba_analytics", name)
    assert err.value.kind == "table" and "params file" in str(err.value)


@pytest.mark.parametrize(
    "project", ["p`.d.t; DELETE", "Nba-props", "short", "-abcdef", "abcdef-", "a_bcdef", "a" * 31]
)
def test_a_project_id_that_is_not_plain_is_refused(project):
    with pytest.raises(InvalidIdentifierError):
        check_project(project)


@pytest.mark.parametrize("project", ["nba-props-platform", "nba-props-staging", "abcdef"])
def test_plain_project_ids_are_accepted(project):
    assert check_project(project) == project


def test_a_dataset_name_is_checked_with_its_kind_named():
    with pytest.raises(InvalidIdentifierError) as err:
        check_name("nba_analytics`", "dataset")
    assert err.value.kind == "dataset"
    assert check_name("nba_analytics", "dataset") == "nba_analytics"


def test_a_trailing_newline_does_not_slip_through_fullmatch():
    # re.match + $ would accept "name\n"; fullmatch must not.
    with pytest.raises(InvalidIdentifierError):
        check_name("nba_analytics\n", "dataset")
