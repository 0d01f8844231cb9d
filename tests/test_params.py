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


def test_a_duplicate_key_is_refused_with_its_full_path_and_lines(params_dir):
    err = load_error(params_dir, BASE + "cleanup:\n  ttl_days: 7\n  ttl_days: 3\n")
    assert err.key == "cleanup.ttl_days" and "duplicate" in err.problem
    assert "line 5" in err.problem and "line 6" in err.problem
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


@pytest.mark.parametrize(
    "key, value",
    [
        ("fallback_threshold", 0.0),
        ("fallback_threshold", 1.5),
        ("fail_below_pct", -1.0),
        ("fail_below_pct", 100.5),
        ("warn_below_pct", 101.0),
        ("bootstrap_days", -1),
    ],
)
def test_backfill_thresholds_out_of_range_are_refused(key, value):
    with pytest.raises(ParamsError) as err:
        parse_params(BASE, "inline.yaml", {f"backfill.{key}": value})
    assert err.value.key == f"backfill.{key}" and "type" not in err.value.fix


def test_backfill_fail_band_above_the_warn_band_is_refused():
    with pytest.raises(ParamsError) as err:
        parse_params(BASE, "inline.yaml", {"backfill.fail_below_pct": 96.0})
    assert err.value.key == "backfill.warn_below_pct" and "fail_below_pct" in err.value.problem


def test_backfill_threshold_edges_are_accepted():
    params = parse_params(
        BASE,
        "inline.yaml",
        {"backfill.fallback_threshold": 1.0, "backfill.fail_below_pct": 0.0,
         "backfill.warn_below_pct": 0.0, "backfill.bootstrap_days": 0},
    )
    assert params.backfill.fallback_threshold == 1.0 and params.backfill.bootstrap_days == 0


# -- error wording: the rule that was broken, the file named one way ---------------------------


@pytest.mark.parametrize(
    "extra, key, rule",
    [
        ("cleanup:\n  ttl_days: 0\n", "cleanup.ttl_days", "greater than or equal to 1"),
        ("cleanup:\n  max_delete_fraction: 1.5\n", "cleanup.max_delete_fraction", "less than or equal to 1"),
        ("today: '2025-04-31'\n", "today", "day is out of range for month"),
    ],
)
def test_a_value_of_the_right_type_breaking_a_rule_is_told_the_rule(params_dir, extra, key, rule):
    err = load_error(params_dir, BASE + extra)
    assert err.key == key and rule in str(err)
    assert "right type" not in err.fix


def test_a_bad_project_or_dataset_name_states_the_rule_without_dumping_the_mapping(params_dir):
    err = load_error(params_dir, BASE.replace("nba-props-platform", "abc"))
    assert err.key == "project" and "plain project id" in err.problem
    assert "right type" not in err.fix
    datasets = "datasets:\n  analytics: 'a b'\n  precompute: p\n  orchestration: o\n  reference: r\n"
    err = load_error(params_dir, BASE + datasets)
    assert "analytics" in err.problem and "right type" not in err.fix
    assert "precompute" not in str(err)  # the rest of the mapping is not dumped


def test_a_duplicate_key_in_a_deeper_mapping_is_named_by_its_full_path():
    text = BASE + "phases:\n  p02:\n    confirm: a\n    confirm: b\n"
    with pytest.raises(ParamsError) as err:
        parse_params(text, "inline.yaml")
    assert err.value.key == "phases.p02.confirm"


def test_every_error_names_the_file_the_same_way(params_dir):
    bad_value = load_error(params_dir, BASE + "cleanup:\n  ttl_days: 0\n")
    duplicate = load_error(params_dir, BASE + "cleanup:\n  ttl_days: 7\n  ttl_days: 3\n")
    other_env = load_error(params_dir, BASE.replace("env: test", "env: prod"))
    assert bad_value.source == duplicate.source == other_env.source
    # Outside the project the path is absolute, not relative to some other folder.
    assert bad_value.source == str((params_dir / "test.yaml").resolve())


def test_a_shipped_params_file_is_named_relative_to_the_project():
    with pytest.raises(ParamsError) as err:
        load_params("local", {"cleanup.ttl_days": 0})
    assert err.value.source == "params/local.yaml"



@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("{}", "env"),
        ("backend: sqlite\nenv: BAD\n", "env"),
        ("env: local\nbackend: duckdb\nproject: p-roject\ntoday: '2025-13-01'\ndatasets: {a: b}\n", "today"),
        ("zzz: 1\nenv: local\nbackend: duckdb\nproject: nba-props-platform\ncleanup: {ttl_days: 0}\n", "cleanup.ttl_days"),
    ],
)
def test_a_file_breaking_several_rules_is_told_the_first_in_key_order(text, key):
    # The sections live in runbook_lib/config.py; the first error named is still by file order.
    with pytest.raises(ParamsError) as e:
        parse_params(text, "f.yaml")
    assert e.value.key == key


BQ = "env: test\nbackend: bigquery\nproject: nba-props-platform\n"


def test_bigquery_params_without_an_alert_channel_are_refused_naming_both_ways_out(params_dir):
    err = load_error(params_dir, BQ)
    assert err.key == "alerts"
    assert "alerts.webhook_url" in str(err) and "alerts.no_channel: true" in str(err)
    assert "NOT CONFIGURED" in str(err)


@pytest.mark.parametrize("alerts", ["  no_channel: true\n", "  webhook_url: https://hooks.example/x\n"])
def test_bigquery_params_with_a_webhook_or_an_explicit_no_channel_load(params_dir, alerts):
    write(params_dir, BQ + "alerts:\n" + alerts)
    assert load_params("test", params_dir=params_dir).backend == "bigquery"


def test_a_bigquery_api_server_on_this_machine_needs_no_alert_channel():
    """--env emulator: phase 05 gets the receiver on 127.0.0.1, as on local."""
    assert load_params("emulator").alerts.webhook_url is None
