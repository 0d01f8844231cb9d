"""Params files: strict, typed, and every error names the file and the key."""

from __future__ import annotations

import datetime as dt

import pytest

from runbook_lib.errors import ParamsError, UnknownEnvironmentError
from runbook_lib.run.params import load_params, parse_params

BASE = "env: test\nbackend: duckdb\nproject: nba-props-platform\n"


@pytest.fixture
def params_dir(tmp_path):
    """A params folder holding only params/test.yaml (the minimal valid file)."""
    folder = tmp_path / "params"
    folder.mkdir()
    (folder / "test.yaml").write_text(BASE)
    return folder


def write(params_dir, text: str) -> None:
    (params_dir / "test.yaml").write_text(text)


def load_error(params_dir, text: str) -> ParamsError:
    write(params_dir, text)
    with pytest.raises(ParamsError) as err:
        load_params("test", params_dir=params_dir)
    return err.value


def test_the_shipped_environments_load():
    for env in ("local", "staging", "prod"):
        assert load_params(env).env == env


def test_an_unknown_environment_lists_the_known_ones(params_dir):
    with pytest.raises(UnknownEnvironmentError) as err:
        load_params("qa", params_dir=params_dir)
    assert err.value.env == "qa" and "test" in str(err.value) and "params/qa.yaml" in str(err.value)


def test_an_environment_name_with_a_path_in_it_is_unknown(params_dir):
    with pytest.raises(UnknownEnvironmentError):
        load_params("../test", params_dir=params_dir)


def test_an_unknown_key_is_named_with_its_file(params_dir):
    err = load_error(params_dir, BASE + "cleanup:\n  ttl_dayz: 7\n")
    assert err.key == "cleanup.ttl_dayz" and err.problem == "unknown key"
    assert err.source.endswith("test.yaml") and "test.yaml" in str(err)


def test_a_duplicate_key_is_refused_with_its_line(params_dir):
    err = load_error(params_dir, BASE + "cleanup:\n  ttl_days: 7\n  ttl_days: 3\n")
    assert err.key == "ttl_days" and "duplicate" in err.problem and "line 6" in err.problem
    assert err.source.endswith("test.yaml")


@pytest.mark.parametrize(
    "extra, key",
    [
        ("cleanup:\n  ttl_days: 'seven'\n", "cleanup.ttl_days"),
        ("cleanup:\n  dry_run: 'yes'\n", "cleanup.dry_run"),
        ("backfill:\n  workers: 2.5\n", "backfill.workers"),
        ("maximum_bytes_billed: -1\n", "maximum_bytes_billed"),
    ],
)
def test_a_wrong_type_names_the_key(params_dir, extra, key):
    err = load_error(params_dir, BASE + extra)
    assert err.key == key and err.source.endswith("test.yaml")


def test_a_missing_required_key_is_named(params_dir):
    err = load_error(params_dir, "env: test\nbackend: duckdb\n")
    assert err.key == "project" and "missing" in err.problem


@pytest.mark.parametrize(
    "project", ["nba-props`.x; DROP", "NBA-props-platform", "nba_props_platform", "abc"]
)
def test_a_project_that_is_not_a_plain_id_is_refused(params_dir, project):
    err = load_error(params_dir, f"env: test\nbackend: duckdb\nproject: '{project}'\n")
    assert err.key == "project"


def test_a_dataset_name_that_is_not_plain_is_refused(params_dir):
    datasets = (
        "datasets:\n  analytics: 'x`; DELETE FROM y --'\n  precompute: p\n"
        "  orchestration: o\n  reference: r\n"
    )
    err = load_error(params_dir, BASE + datasets)
    assert err.key == "datasets" and "analytics" in err.problem


def test_the_dataset_keys_must_be_exactly_the_declared_ones(params_dir):
    err = load_error(params_dir, BASE + "datasets:\n  analytics: a\n")
    assert err.key == "datasets" and "missing" in err.problem


def test_dates_stay_strings_until_the_model_parses_them(params_dir):
    write(params_dir, BASE + "today: 2025-04-10\n")  # unquoted: YAML would make it a date
    assert load_params("test", params_dir=params_dir).today == dt.date(2025, 4, 10)
    err = load_error(params_dir, BASE + "today: 2025-02-30\n")
    assert err.key == "today" and "YYYY-MM-DD" in str(err)


def test_a_file_for_another_environment_is_refused(params_dir):
    err = load_error(params_dir, BASE.replace("env: test", "env: prod"))
    assert err.key == "env"


def test_overrides_are_validated_like_the_file():
    with pytest.raises(ParamsError) as err:
        parse_params(BASE, "inline.yaml", {"cleanup.max_delete_fraction": 1.5})
    assert err.value.key == "cleanup.max_delete_fraction" and err.value.source == "inline.yaml"


def test_params_are_frozen():
    params = parse_params(BASE)
    with pytest.raises(ValueError):
        params.project = "nba-props-staging"


def test_non_mapping_yaml_is_refused():
    with pytest.raises(ParamsError) as err:
        parse_params("- a\n- b\n", "list.yaml")
    assert err.value.key == "<top>"
