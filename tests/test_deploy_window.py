"""The deployment window: open, closed with the next allowed time, overridden on the record.

Every instant is a parameter; no test reads the wall clock.
"""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from runbook_lib.config import DeploymentWindowConfig
from runbook_lib.errors import ParamsError, PhaseFailedError
from runbook_lib.run import deploy_window, manifest, runner
from runbook_lib.run.params import load_params
from runbook_lib.run.phase_checks import window_checks

SHIPPED = load_params("staging").deployment_window
PROD = load_params("prod").deployment_window


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("when", "why"),
    [
        ("2026-01-10T04:05:00-05:00", "inside the blackout 03:45-04:30: the 04:00 upcoming-tables"),
        ("2026-01-10T09:05:00Z", "inside the blackout 03:45-04:30: the 04:00 upcoming-tables"),
        ("2026-01-10T02:00:00-05:00", "inside the blackout 01:00-03:30: the nightly backfill"),
    ],
)
def test_blackout_hours_close_the_window_and_name_why(when, why):
    """The nightly backfill and the 04:00 America/New_York cleanup are closed, in any offset."""
    window = deploy_window.check(SHIPPED, when)
    assert not window["open"] and why in window["closed_because"]
    assert deploy_window.check(SHIPPED, "2026-01-10T09:35:00Z")["open"]  # 04:35 in New York


def test_closed_window_names_the_next_allowed_time_in_both_zones():
    """Refused at 04:05 New York: next allowed 04:30 New York, 09:30 UTC."""
    window = deploy_window.check(SHIPPED, "2026-01-10T04:05:00-05:00")
    assert window["next_allowed"] == "Sat 2026-01-10 04:30 EST (09:30 UTC)"
    check = window_checks(window)[0]
    assert not check.ok and "next allowed Sat 2026-01-10 04:30 EST" in check.evidence
    assert "deployment_window.override_reason" in check.evidence


def test_prod_days_and_hours_skip_to_monday_morning():
    """Prod deploys on weekdays 09:00-17:00: on a Saturday the next time is Monday 09:00."""
    window = deploy_window.check(PROD, at("2026-01-10T12:00:00-05:00"))
    assert window["closed_because"].startswith("sat is not a deployment day")
    assert window["next_allowed"] == "Mon 2026-01-12 09:00 EST (14:00 UTC)"
    assert deploy_window.check(PROD, at("2026-01-12T16:59:00-05:00"))["open"]
    assert not deploy_window.check(PROD, at("2026-01-12T17:00:00-05:00"))["open"]


def test_a_span_may_cross_midnight_and_daylight_saving_is_real_time():
    """A 22:00-02:00 blackout is closed at 23:30 and at 01:30; after the spring change the
    next allowed minute is 02:00 local on the wall clock that actually exists."""
    cfg = DeploymentWindowConfig(blackouts={"22:00-02:00": "late games"})
    assert not deploy_window.check(cfg, at("2026-03-07T23:30:00-05:00"))["open"]
    window = deploy_window.check(cfg, at("2026-03-08T01:30:00-05:00"))
    assert not window["open"]
    assert window["next_allowed"] == "Sun 2026-03-08 03:00 EDT (07:00 UTC)"


def test_override_is_recorded_and_the_check_passes():
    """An explicit override opens a closed window, and the evidence says it was overridden."""
    cfg = SHIPPED.model_copy(update={"override_reason": "hotfix INC-7, on-call present"})
    window = deploy_window.check(cfg, "2026-01-10T04:05:00-05:00")
    check = window_checks(window)[0]
    assert (
        check.ok and 'OVERRIDDEN with the reason "hotfix INC-7, on-call present"' in check.evidence
    )
    assert deploy_window.check(cfg, "2026-01-10T12:00:00-05:00")["override_reason"] is None


def test_a_window_that_never_opens_says_so():
    """No day allowed at all: closed, and no next time within 8 days."""
    cfg = DeploymentWindowConfig(hours="09:00-10:00", blackouts={"08:00-11:00": "always"})
    assert (
        deploy_window.check(cfg, "2026-01-10T09:30:00-05:00")["next_allowed"]
        == "none within 8 days"
    )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"deployment_window.hours": "9-17"}, "deployment_window.hours"),
        ({"deployment_window.blackouts": {"25:00-26:00": "x"}}, "deployment_window.blackouts"),
        ({"deployment_window.time_zone": "Mars/Olympus"}, "deployment_window.time_zone"),
        ({"deployment_window.days": ["monday"]}, "deployment_window.days.0"),
        ({"deployment_window.override_reason": ""}, "deployment_window.override_reason"),
    ],
)
def test_malformed_window_params_are_refused_naming_the_key(override, key):
    """Spans, zones, day names and an empty reason are checked when params load."""
    with pytest.raises(ParamsError) as caught:
        load_params("staging", override)
    assert caught.value.key == key


def test_a_time_without_offset_is_refused():
    """A naive time could be read in any zone: refused with the form to use."""
    with pytest.raises(ValueError, match="no UTC offset"):
        deploy_window.check(SHIPPED, "2026-01-10T04:05:00")


def test_run_inside_the_blackout_fails_phase_00_then_runs_with_an_override(
    tmp_params_dir, tmp_path, seeded_file, monkeypatch
):
    """The real phase 00 on staging-shaped params: refused at 04:05 New York naming 04:30; the
    override goes through and the deployment log records it."""
    from runbook_lib import paths

    monkeypatch.setattr(paths, "ROOT", tmp_path)
    local = (tmp_params_dir / "local.yaml").read_text()
    text = local.replace("env: local", "env: staging")
    window = "\n".join(
        f"  {line}"
        for line in (
            "time_zone: America/New_York",
            "blackouts:",
            '  "03:45-04:30": the 04:00 cleanup',
        )
    )
    (tmp_params_dir / "staging.yaml").write_text(f"{text}deployment_window:\n{window}\n")
    (tmp_path / "warehouse").mkdir()
    shutil.copy(seeded_file, tmp_path / "warehouse" / seeded_file.name)
    when = {"phases": {"00_preflight": {"window_at": "2026-01-10T04:05:00-05:00"}}}
    with pytest.raises(PhaseFailedError) as caught:
        runner.run("staging", phases=["00"], out_root=tmp_path / "out", overrides=when)
    assert "checks failed: deployment window" in caught.value.reason
    rec = manifest.latest_status(manifest.load(caught.value.result.run_dir))["00_preflight"]
    check = next(c for c in rec["checks"] if c["check"] == "deployment window")
    assert "next allowed Sat 2026-01-10 04:30 EST (09:30 UTC)" in check["detail"]
    why = "hotfix INC-7"
    result = runner.run(
        "staging",
        phases=["00"],
        out_root=tmp_path / "out",
        overrides={**when, "deployment_window.override_reason": why},
    )
    log = (result.run_dir / "deployment_log.md").read_text()
    assert "deployment window overridden" in log and why in log


def test_a_given_instant_is_refused_on_a_shared_warehouse():
    # On staging or prod a window_at would move the window without a reason: refused, named.
    with pytest.raises(ParamsError) as caught:
        deploy_window.check(SHIPPED, "2026-01-10T12:00:00-05:00", on_this_machine=False)
    assert caught.value.key == "phases.00_preflight.window_at"
    assert "deployment_window.override_reason" in caught.value.fix
    assert not deploy_window.check(SHIPPED, "", on_this_machine=False)["at_source"].startswith("given")
