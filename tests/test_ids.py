"""Identifiers: only plain names reach SQL."""

from __future__ import annotations

import pytest

from runbook_lib.errors import EnvironmentMismatchError, InvalidIdentifierError
from runbook_lib.warehouse.ids import TableId, check_name, check_project, parse_table_id


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


PROJECT = "nba-props-platform"


@pytest.mark.parametrize(
    "text",
    [
        "upcoming_player_game_context_backup_r1",
        "nba_analytics.upcoming_player_game_context_backup_r1",
        "nba-props-platform.nba_analytics.upcoming_player_game_context_backup_r1",
    ],
)
def test_a_table_given_as_table_dataset_table_or_full_id_is_parsed(text):
    parsed = parse_table_id(text, PROJECT, "nba_analytics", "--backup")
    assert parsed == TableId(PROJECT, "nba_analytics", "upcoming_player_game_context_backup_r1")


def test_a_full_id_of_another_project_is_an_environment_mismatch():
    with pytest.raises(EnvironmentMismatchError) as err:
        parse_table_id("nba-props-staging.nba_analytics.t", PROJECT, "nba_analytics", "--backup")
    assert err.value.actual == "nba-props-staging" and "--backup" in str(err.value)


@pytest.mark.parametrize("text", ["a.b.c.d", "nba_analytics.t;x", "nba_analytics.", "p`x.d.t"])
def test_a_bad_name_from_the_command_line_names_its_flag_not_the_params_file(text):
    with pytest.raises(InvalidIdentifierError) as err:
        parse_table_id(text, PROJECT, "nba_analytics", "--table")
    assert err.value.source == "--table"
    assert str(err.value).startswith("--table: ") and "params file" not in str(err.value)
