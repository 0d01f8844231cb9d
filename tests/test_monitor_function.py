"""The monitor as a second Cloud Function: its entry point served by functions-framework, its plan."""

from __future__ import annotations

import json

from runbook_lib.platform import deploy_plan, monitoring
from runbook_lib.platform.cloud_function import local
from runbook_lib.platform.cloud_function.bundle import build_bundle
from runbook_lib.run.params import load_params
from tests.test_monitor import LOST, healthy_league, plant_four_problems


def test_the_served_monitor_function_alerts_each_problem_once_on_127_0_0_1(
    empty_wh, local_params, tmp_path
):
    t = local_params.tables
    healthy_league(empty_wh, t)
    plant_four_problems(empty_wh, t)
    bundle = build_bundle(tmp_path / "bundle", "duckdb")
    with monitoring.local_receiver() as receiver:
        env = local_params.function_config(receiver.url).to_env()
        with local.LocalFunctionServer(
            bundle, "monitor_backfill_coverage", "cloudevent", env
        ) as srv:
            for _ in range(2):  # the scheduler fires twice the same day: one alert per problem
                attributes, data = local.pubsub_event({}, "t", local_params.project)
                status, _ = local.post(srv.url, *local.encode_event(attributes, data, "structured"))
                assert status == 200, srv.output()
            output = srv.output()
    assert receiver.received_count() == 4
    assert any(f"--env local --start-date {LOST}" in m["text"] for m in receiver.received)
    summaries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [s["alerts_sent"] for s in summaries] == [4, 0]
    assert summaries[0]["status"] == "alerting" and len(summaries[0]["problems"]) == 4
    runs = empty_wh.query(f"SELECT problems FROM {t.monitor_runs.sql}")
    assert runs["problems"].tolist() == [4, 4]


def test_the_monitor_function_deploys_through_the_same_plan_after_the_nightly_backfill(tmp_path):
    params = load_params("staging")
    bundle = build_bundle(tmp_path / "bundle")
    plan = deploy_plan.build_plan(
        params.env, params.monitor_function, params.function_config(), bundle
    )
    text = deploy_plan.format_plan(plan, deploy_plan.static_steps(plan))
    assert "function backfill-coverage-monitor" in text and "'0 6 * * *'" in text
    assert "--entry-point monitor_backfill_coverage" in text
    assert "RUNBOOK_ENV=staging" in text
