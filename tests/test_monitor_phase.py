"""Phase 05's monitor steps on the seeded league: views, the daily run, three problems planted and removed."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from runbook_lib.errors import MonitorDemoError
from runbook_lib.platform import monitoring
from runbook_lib.run import backfill_steps, monitor_phase, phase_checks, post_deployment

TODAY = dt.date(2025, 4, 10)


@pytest.fixture
def nightly(seeded_wh, local_params):
    """The seeded league after the nightly backfill of the last 30 days, as phase 05 runs it."""
    backfill_steps.nightly_backfill(seeded_wh, local_params, TODAY, 30)
    return seeded_wh


def test_the_demonstration_should_alert_three_planted_problems_and_remove_exactly_them(
    nightly, local_params
):
    with monitoring.alert_channel(None, is_local=True) as channel:
        demo = monitor_phase.demonstrate(nightly, local_params, TODAY, channel, "run-05")
        again = monitor_phase.demonstrate(nightly, local_params, TODAY, channel, "run-05b")
    checks = phase_checks.demo_checks(demo) + phase_checks.demo_checks(again)
    assert [c for c in checks if not c.ok] == []
    assert demo.received == 3 and again.received == 3  # a rerun the same day alerts again
    assert demo.planted.night == dt.date(2025, 4, 9) and len(demo.planted.pcf_rows) == 50
    texts = [m["text"] for m in channel.received]
    assert any(
        f"{demo.planted.game_day}: games are scheduled but PGS has 0 box scores" in t for t in texts
    )
    left = nightly.query(f"SELECT COUNT(*) AS n FROM {local_params.tables.monitor_alerts.sql}")
    assert int(left["n"][0]) == 0


def test_the_demonstration_should_reuse_the_daily_check_only_for_the_same_day(
    nightly, local_params
):
    """Phase 05 passes the daily run's result: the same check is not run twice; a result of
    another day or window is not used."""
    with monitoring.alert_channel(None, is_local=True) as channel:
        daily = monitor_phase.run_monitor(nightly, local_params, TODAY, channel, "run-05")
        assert daily.problems  # the seed's stale upcoming rows
        demo = monitor_phase.demonstrate(
            nightly, local_params, TODAY, channel, "run-05", before=daily
        )
        assert [c for c in phase_checks.demo_checks(demo) if not c.ok] == []
        assert demo.before == [p.key for p in daily.problems] == demo.after
        marked = replace(daily, problems=[])  # told apart from a fresh check by its problems
        assert (
            monitor_phase.demonstrate(
                nightly, local_params, TODAY, channel, "r2", before=marked
            ).before
            == []
        )
        for other in (replace(marked, day=daily.day - dt.timedelta(days=1)),
                      replace(marked, window_days=7)):  # fmt: skip
            again = monitor_phase.demonstrate(
                nightly, local_params, TODAY, channel, "r3", before=other
            )
            assert again.before == demo.before


def test_the_demonstration_should_not_plant_through_a_real_channel(nightly, local_params):
    demo = monitor_phase.demonstrate(
        nightly, local_params, TODAY, monitoring.Webhook("http://127.0.0.1:9/x"), "run-05"
    )
    assert not demo.ran and "only on local" in demo.why_not
    assert phase_checks.demo_checks(demo)[0].ok


def test_the_demonstration_should_say_why_when_yesterday_was_no_game_day(nightly, local_params):
    with monitoring.alert_channel(None, is_local=True) as channel:
        with pytest.raises(MonitorDemoError, match="need 2025-07-14 to be a game day"):
            monitor_phase.demonstrate(nightly, local_params, dt.date(2025, 7, 15), channel, "r")


def test_the_views_and_the_daily_run_should_agree_after_the_nightly_backfill(nightly, local_params):
    views = monitor_phase.create_views(nightly, local_params)
    board = monitor_phase.dashboard(nightly, local_params.tables)
    assert len(board) > 20 and set(board["coverage_pct"]) == {100.0}
    with monitoring.alert_channel(None, is_local=True) as channel:
        daily = monitor_phase.run_monitor(nightly, local_params, TODAY, channel, "run-05")
    alerts = monitor_phase.alert_view(nightly, local_params.tables)
    assert sorted(alerts["check_name"]) == sorted(p.check for p in daily.problems)
    assert all(c.ok for c in phase_checks.monitor_checks(daily, views))


def test_a_dashboard_with_no_metadata_yet_should_say_so(empty_wh, local_params):
    monitor_phase.create_views(empty_wh, local_params)
    board = monitor_phase.dashboard(empty_wh, local_params.tables)
    check = phase_checks.dashboard_checks(board, 30)[0]
    assert not check.ok and "no backfill has run since the deployment" in check.evidence


def test_an_explicit_no_channel_should_be_not_configured_not_failed():
    check = phase_checks.alert_checks(None, 0, "none", no_channel=True)[0]
    assert check.ok and check.evidence.startswith("NOT CONFIGURED")
    assert not phase_checks.alert_checks(None, 0, "none", no_channel=False)[0].ok


def test_the_monitor_function_should_run_from_the_bundle_and_record_its_run(nightly, local_params):
    """Phase 05 on this machine: the monitor's Cloud Function entry point served by
    functions-framework, one scheduled event, a run recorded in monitor_runs by the function."""
    table = local_params.tables.monitor_runs  # created by the monitor's first recorded run
    before = nightly.row_count(table) if nightly.table_exists(table) else 0
    with monitoring.alert_channel(None, True, local_params.contacts.named()) as channel:
        with monitor_phase.monitor_function(local_params, channel, "20250410T120000Z-ab12") as fn:
            served = fn.trigger()
    assert [c.ok for c in phase_checks.monitor_function_checks(served)] == [True], served
    assert served["summary"]["function"] == "backfill_coverage_monitor"
    assert nightly.row_count(table) == before + 1
    # The run the deployment triggered is its own, never evidence that monitoring is active.
    since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    evidence = post_deployment.monitor_runs_after(
        nightly, local_params.tables, since, "20250410T120000Z-ab12"
    )
    assert evidence.empty
    assert (
        len(post_deployment.monitor_runs_after(nightly, local_params.tables, since, "other")) == 1
    )
    assert all(m["contacts"] == local_params.contacts.named() for m in channel.received)
    with monitoring.alert_channel("http://127.0.0.1:9/hook", False) as remote:
        remote_params = local_params.model_copy(
            update={
                "bigquery": local_params.bigquery.model_copy(update={"endpoint": None}),
                "backend": "bigquery",
            }
        )
        with monitor_phase.monitor_function(remote_params, remote) as fn:
            assert fn.trigger()["served"] is False


def test_the_monitor_function_served_for_a_block_stops_with_it_even_when_the_block_fails(
    local_params,
):
    """Phase 05 starts the monitor's function at the top of its cell, so it boots while the
    monitor runs here; a failure before the trigger still stops it and removes its bundle."""
    with monitoring.alert_channel(None, True) as channel:
        with pytest.raises(MonitorDemoError):
            with monitor_phase.monitor_function(local_params, channel, "run-1") as function:
                server = function.server
                raise MonitorDemoError(TODAY, 30)  # as the demonstration would
    assert server.process.poll() is not None
    assert not server.bundle_dir.exists()
    # No process of it is left: gunicorn's workers carry the master's command line, which names
    # this test's own bundle (the suite caught a worker forked during the boot outliving it).
    assert not _processes_naming(str(server.bundle_dir))


def _processes_naming(text: str) -> list[str]:
    """Return the pids of live processes whose command line contains `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:  # not a process, or it ended while we looked
            continue
        if proc.name.isdigit() and text.encode() in cmd:
            found.append(proc.name)
    return found
