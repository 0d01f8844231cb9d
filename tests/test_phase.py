"""The in-notebook API and the confirmation helpers, called in-process (no kernel)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

import pandas as pd
import pytest

from runbook_lib import paths
from runbook_lib.errors import ConfirmationRequired, SignOffRequired, VerificationFailedError
from runbook_lib.run import checks, interact
from runbook_lib.run.phase import OVERRIDES_ENV, open_phase, read_results, to_jsonable


@pytest.fixture
def phase(tmp_path):
    """A phase opened inside a run dir with today overridden."""
    return open_phase(
        "02_data_cleanup", env="local", run_dir=str(tmp_path / "run1"), today="2025-04-11"
    )


def test_open_phase_applies_today_and_binds_the_run_dir(phase, tmp_path):
    """today overrides the params, and the run id is the run dir's name."""
    assert phase.today == dt.date(2025, 4, 11) and phase.run_id == "run1"
    assert phase.results_path == tmp_path / "run1" / "results" / "02_data_cleanup.json"


def test_run_overrides_reach_the_phase_params(tmp_path, monkeypatch):
    """The runner's --set overrides arrive through the environment when inside a run."""
    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path / "outputs")
    monkeypatch.setenv(OVERRIDES_ENV, json.dumps({"cleanup.ttl_days": 3}))
    p = open_phase("x", run_dir=str(tmp_path / "r"))
    assert p.params.cleanup.ttl_days == 3
    assert open_phase("x").params.cleanup.ttl_days == 7  # standalone ignores them


def test_record_stores_json_and_returns_the_value(phase):
    """Dates become ISO strings and DataFrames records; the value comes back for display."""
    df = pd.DataFrame({"game_date": [dt.date(2023, 2, 23)], "rows": [1]})
    assert phase.record("preview", df) is df
    doc = read_results(phase.run_dir, phase.name)
    assert doc["results"]["preview"] == [{"game_date": "2023-02-23", "rows": 1}]
    assert doc["status"] == "RUNNING"


def test_to_jsonable_handles_numpy_and_nested_values():
    """numpy scalars and nested containers become plain JSON."""
    s = pd.Series([1, 2]).sum()
    assert to_jsonable({"a": (s, dt.datetime(2025, 1, 1, 4)), "b": {3, 1}}) == {
        "a": [3, "2025-01-01T04:00:00"],
        "b": [1, 3],
    }


def test_finish_succeeds_only_when_checks_ran_and_passed(phase):
    """finish marks SUCCEEDED after passing checks."""
    assert phase.check("backup verified", True) is True
    phase.finish()
    assert read_results(phase.run_dir, phase.name)["status"] == "SUCCEEDED"


def test_finish_with_zero_checks_is_a_failure(phase):
    """Zero checks run is a failure, never a pass."""
    with pytest.raises(VerificationFailedError, match="zero checks"):
        phase.finish()
    assert read_results(phase.run_dir, phase.name)["status"] == "FAILED"


def test_finish_raises_naming_the_failed_check(phase):
    """A failed check is recorded and fails the phase at finish."""
    assert phase.check("no stale rows remain", False, "3 left") is False
    phase.check("other", True)
    with pytest.raises(VerificationFailedError, match="no stale rows remain"):
        phase.finish()


def test_sign_off_records_item_name_and_time(phase):
    """A sign-off needs a name and is stored in approvals."""
    entry = phase.sign_off("Code review completed", "Ann Lee", at="2025-04-10T09:00:00+00:00")
    assert phase.results["approvals"] == [entry] and entry["name"] == "Ann Lee"
    with pytest.raises(ValueError):
        phase.sign_off("Permissions verified", "  ")


def test_capture_logs_collects_library_log_lines(phase):
    """Log lines of runbook_lib loggers are captured at INFO inside the block only."""
    with phase.capture_logs("runbook") as lines:
        logging.getLogger("runbook_lib.platform.x").info("PRE-FLIGHT passed for %d dates", 2)
        logging.getLogger("other").warning("not ours")
    logging.getLogger("runbook_lib.platform.x").info("after the block")
    assert list(lines) == ["PRE-FLIGHT passed for 2 dates"]
    table = lines.expect(["PRE-FLIGHT passed", "FALLBACK"])
    assert table["found"].tolist() == [True, False]


def test_confirm_accepts_only_the_exact_token():
    """A missing or different confirmation raises and names the expected token."""
    token = "delete 12 rows from nba_analytics.upcoming_player_game_context"
    assert interact.confirm(token, f" {token} ") == token
    with pytest.raises(ConfirmationRequired) as caught:
        interact.confirm(token, "delete 13 rows from nba_analytics.upcoming_player_game_context")
    assert caught.value.expected_token == token
    with pytest.raises(ConfirmationRequired):
        interact.confirm(token, interact.ask_confirmation(token, ""))


def test_approvals_from_parameters_require_every_item(phase):
    """Headless sign-offs come from the approvals parameter; an open item stops the phase."""
    items = ["Code review completed", "Backup plan reviewed"]
    with pytest.raises(SignOffRequired, match="Backup plan reviewed"):
        interact.approvals(items, {"Code review completed": "Ann"}).require()
    signed = interact.approvals(items, {i: "Ann" for i in items}).require(phase=phase)
    assert [s["item"] for s in signed] == items and len(phase.results["approvals"]) == 2


def test_phase_repr_states_environment_warehouse_today_and_run_folder(phase):
    """A cell ending in `phase` says where and when it runs, and no '0/0 checks' before any."""
    text = repr(phase)
    assert "environment: local (params params/local.yaml)" in text
    assert "warehouse: DuckDB file " in text and text.count(".duckdb") == 1
    assert "today: 2025-04-11: this notebook's today parameter, given to the run" in text
    assert f"run folder: {phase.run_dir} (run run1)" in text
    assert "checks: none run yet" in text and "0/0" not in text
    phase.check("one", True)
    assert "checks: 1 passed, 0 failed so far" in repr(phase)
    html = phase._repr_html_()
    assert "<table" in html and "none run yet" not in html


def test_standalone_phase_says_so_and_that_an_empty_today_means_the_params_date(
    tmp_path, monkeypatch
):
    """`today=""` is the params' fixed date, not the real today, and the header says so."""
    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path / "outputs")
    text = repr(open_phase("02_data_cleanup"))
    assert "today: 2025-04-10: the date fixed by the today key of params/local.yaml" in text
    assert 'means the params\' date, not the real today' in text
    assert "run folder: standalone (not part of a run)" in text


def test_finish_shows_every_check_with_its_whole_detail(phase, capsys):
    """A long detail is shown whole (HTML wraps it), and kept whole in the results file."""
    long = "backup nba_backups.x verified; " * 100
    phase.check("backups verified", True, long)
    phase.finish()
    printed = capsys.readouterr().out
    assert long.strip() in printed and "…" not in printed
    assert "1 of 1 checks passed" in printed
    assert read_results(phase.run_dir, phase.name)["checks"][0]["detail"] == long


@dataclasses.dataclass(frozen=True)
class _Tree:
    clean: bool
    dirty: tuple[str, ...]
    since: dt.date


def test_check_details_that_are_dates_or_dataclasses_read_as_data(phase):
    """A date detail reads 2023-02-25 and a dataclass as its fields, not their Python reprs."""
    phase.check("normal date", True, dt.date(2023, 2, 25))
    phase.check("tree", True, _Tree(False, ("M x.py",), dt.date(2023, 2, 25)))
    phase.check("plain", True, "3 left")
    details = [c["detail"] for c in read_results(phase.run_dir, phase.name)["checks"]]
    assert details == [
        "2023-02-25",
        '{"clean": false, "dirty": ["M x.py"], "since": "2023-02-25"}',
        "3 left",
    ]


def test_run_tests_summary_has_no_colour_codes_when_colour_is_forced(tmp_path, monkeypatch):
    """pytest's ANSI colours never reach what phase 01 records, even with PY_COLORS=1."""
    (tmp_path / "test_tiny.py").write_text("def test_ok():\n    assert True\n")
    monkeypatch.setenv("PY_COLORS", "1")
    result = checks.run_tests(["test_tiny.py"], root=tmp_path)
    assert result["passed"] == 1 and result["exit_code"] == 0
    assert "\x1b[" not in result["summary"] and result["summary"].startswith("1 passed")
