"""The daily cleanup function, built as a bundle, run by functions-framework on the local warehouse."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from importlib import metadata
from pathlib import Path

import functions_framework
import pandas as pd
import pytest

from runbook_lib import paths
from runbook_lib.errors import DeployError, ParamsError
from runbook_lib.platform import cleanup, monitoring
from runbook_lib.platform.cloud_function import local
from runbook_lib.platform.cloud_function.bundle import build_bundle, bundle_digest
from runbook_lib.platform.cloud_function.config import ENV_VARS, FunctionConfig
from runbook_lib.run import function_phase
from runbook_lib.run.params import load_params

CUTOFF = dt.date(2025, 4, 3)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The function's source bundle for the local warehouse, built once for the module."""
    return build_bundle(tmp_path_factory.mktemp("bundle"), "duckdb")


@pytest.fixture
def wh(empty_wh, local_params):
    """UPCG: 3 stale rows and 8 kept; UTCG: 2 stale and 5 kept (today 2025-04-10, TTL 7)."""
    tables = local_params.tables
    start = dt.date(2025, 3, 31)
    upcg = [start + dt.timedelta(days=i) for i in range(11)]
    utcg = [start + dt.timedelta(days=i + 1) for i in range(7)]
    empty_wh.load_dataframe(
        tables.upcg,
        pd.DataFrame(
            {
                "player_lookup": [f"p{i}" for i in range(11)],
                "game_id": "g",
                "game_date": pd.Series(upcg, dtype="dbdate"),
                "team_abbr": "BOS",
                "opponent_team_abbr": "NYK",
            }
        ),
    )
    empty_wh.load_dataframe(
        tables.utcg,
        pd.DataFrame(
            {
                "team_abbr": "BOS",
                "game_id": [f"g{i}" for i in range(7)],
                "game_date": pd.Series(utcg, dtype="dbdate"),
            }
        ),
    )
    return empty_wh


@pytest.fixture
def receiver():
    """A real webhook on 127.0.0.1 that keeps every JSON body POSTed to it."""
    with monitoring.local_receiver() as r:
        yield r


@pytest.fixture
def fn_env(local_params, monkeypatch, receiver):
    """Set the function's environment for the local warehouse; return it."""
    env = local_params.function_config(receiver.url).to_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def stale(wh, tables) -> int:
    return sum(
        wh.row_count(t, "game_date < @c", {"c": CUTOFF}) for t in cleanup.upcoming_tables(tables)
    )


def audit(wh, tables) -> pd.DataFrame:
    return wh.query(f"SELECT * FROM {tables.cleanup_operations.sql}")


def send(client, project: str, mode: str = "binary"):
    attributes, data = local.pubsub_event({"trigger": "scheduled"}, "topic", project)
    headers, body = local.encode_event(attributes, data, mode)
    return client.post("/", headers=headers, data=body)


def test_pubsub_event_via_test_client_deletes_stale_rows_and_writes_one_audit_row(
    bundle, wh, local_params, fn_env, receiver
):
    client = functions_framework.create_app(
        "cleanup_upcoming_tables", str(bundle / "main.py"), "cloudevent"
    ).test_client()
    response = send(client, local_params.project, "binary")
    assert response.status_code == 200
    tables = local_params.tables
    assert stale(wh, tables) == 0 and wh.row_count(tables.upcg) == 8
    row = audit(wh, tables).iloc[0]
    assert (row["status"], row["trigger"], row["total_records_deleted"]) == (
        "success",
        "scheduled",
        5,
    )
    assert len(audit(wh, tables)) == 1
    assert receiver.received == []  # 5 rows is under the 10,000-row alert threshold
    assert len(cleanup.list_backups(wh, tables)[tables.upcg]) == 1


def test_a_successful_run_should_drop_backups_past_the_retention_and_keep_its_own(
    bundle, wh, local_params, fn_env
):
    tables = local_params.tables
    old = tables.upcg.with_table(f"{tables.upcg.table}_backup_20200101_040000_x")
    wh.copy_table(tables.upcg, old)
    client = functions_framework.create_app(
        "cleanup_upcoming_tables", str(bundle / "main.py"), "cloudevent"
    ).test_client()
    assert send(client, local_params.project).status_code == 200
    backups = cleanup.list_backups(wh, tables)[tables.upcg]
    assert old not in backups and len(backups) == 1  # this run's own backup stays


def test_failed_run_answers_500_alerts_audits_and_deletes_nothing(
    bundle, wh, local_params, fn_env, receiver, monkeypatch
):
    monkeypatch.setenv("MAX_DELETE_FRACTION", "0.1")  # UPCG 3/11 is over the cap
    client = functions_framework.create_app(
        "cleanup_upcoming_tables", str(bundle / "main.py"), "cloudevent"
    ).test_client()
    response = send(client, local_params.project, "structured")
    assert response.status_code == 500
    assert stale(wh, local_params.tables) == 5
    assert audit(wh, local_params.tables)["status"].tolist() == ["refused"]
    assert [a["title"] for a in receiver.received] == ["Upcoming Tables Cleanup Failed"]


def test_real_local_server_runs_the_bundle_and_alerts_over_the_threshold(
    bundle, wh, local_params, fn_env, receiver
):
    env = {**fn_env, "ALERT_THRESHOLD_ROWS": "4"}
    with local.LocalFunctionServer(bundle, "cleanup_upcoming_tables", "cloudevent", env) as srv:
        attributes, data = local.pubsub_event({"trigger": "scheduled"}, "t", local_params.project)
        status, _ = local.post(srv.url, *local.encode_event(attributes, data, "structured"))
    assert status == 200, srv.output()
    tables = local_params.tables
    assert stale(wh, tables) == 0 and wh.row_count(tables.utcg) == 5
    assert audit(wh, tables)["total_records_deleted"].tolist() == [5]
    assert len(receiver.received) == 1
    alert = receiver.received[0]
    assert alert["title"] == "Unusually Large Deletion"
    assert alert["summary"]["total_records_deleted"] == 5
    # Whom to call: the params' contacts, carried to the function by ALERT_CONTACTS (issue 13.3).
    assert alert["contacts"] == local_params.contacts.named() == env["ALERT_CONTACTS"]
    assert alert["text"].endswith(f"Contacts: {local_params.contacts.named()}")
    summary = [json.loads(line) for line in srv.output().splitlines() if line.startswith("{")]
    assert summary[-1]["cutoff_date"] == CUTOFF.isoformat()


def test_health_endpoint_reports_healthy_with_the_project(bundle, local_params, fn_env):
    client = functions_framework.create_app("health", str(bundle / "main.py"), "http").test_client()
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "healthy",
        "function": "upcoming_tables_cleanup",
        "version": "2.0",
        "project": local_params.project,
    }


def test_bundle_holds_main_pinned_requirements_and_the_library(bundle):
    # The bundle served locally: the DuckDB backend instead of BigQuery's (the deployed one is
    # checked in a clean venv by tests/test_function_bundle.py).
    assert "cleanup_upcoming_tables,\n    health," in (bundle / "main.py").read_text()
    reqs = (bundle / "requirements.txt").read_text().split()
    for dist in ("functions-framework", "duckdb", "pandas"):
        assert f"{dist}=={metadata.version(dist)}" in reqs
    assert not any(r.startswith("google-cloud-bigquery==") for r in reqs)
    for module in ("platform/cleanup.py", "warehouse/duckdb_backend.py", "config.py"):
        assert (bundle / "runbook_lib" / module).exists()
    assert not (bundle / "runbook_lib" / "warehouse" / "bigquery_backend.py").exists()
    assert not (bundle / "runbook_lib" / "cli").exists()
    assert not (bundle / "runbook_lib" / "run").exists()  # the function has its own config


def test_rebuilding_the_bundle_drops_stale_files_and_keeps_its_digest(bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("__pycache__"))
    digest = bundle_digest(copy)
    (copy / "runbook_lib" / "stale.py").write_text("x = 1\n")
    assert bundle_digest(copy) != digest
    build_bundle(copy, "duckdb")
    assert not (copy / "runbook_lib" / "stale.py").exists()
    assert bundle_digest(copy) == digest == bundle_digest(bundle)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"GCP_PROJECT_ID": "nba-props-platform", "TTL_DAYS": "0"},
        {"GCP_PROJECT_ID": "nba-props-platform", "TTL_DAYS": "seven"},
    ],
)
def test_config_from_env_rejects_missing_or_bad_values(env):
    with pytest.raises(ParamsError):
        FunctionConfig.from_env(env)


def test_function_config_reads_back_the_variables_it_writes(local_params):
    env = local_params.function_config("http://127.0.0.1:9/hook").to_env()
    # The local warehouse: every variable, today included; local has no byte cap to carry
    # and no endpoint (DuckDB has none).
    assert set(env) == set(ENV_VARS) - {"MAXIMUM_BYTES_BILLED", "BIGQUERY_ENDPOINT"}
    assert FunctionConfig.from_env(env) == local_params.function_config("http://127.0.0.1:9/hook")
    emulator = load_params("emulator").function_config().to_env()
    assert emulator["BIGQUERY_ENDPOINT"] == "http://127.0.0.1:9050"
    assert FunctionConfig.from_env(emulator).to_env() == emulator
    staging = load_params("staging").function_config().to_env()
    local_only = {name for name, (_, only) in ENV_VARS.items() if only}
    assert not local_only & set(staging) and "GCP_PROJECT_ID" in staging
    assert FunctionConfig.from_env(staging).to_env() == staging


def test_the_function_runs_its_queries_in_its_location_under_its_byte_cap(monkeypatch):
    from runbook_lib.warehouse import EMULATOR_ENV, connect

    params = load_params("staging", {"location": "EU"})
    env = params.function_config().to_env()
    assert env["BIGQUERY_LOCATION"] == "EU"
    assert env["MAXIMUM_BYTES_BILLED"] == str(params.maximum_bytes_billed)
    monkeypatch.setenv(EMULATOR_ENV, "http://127.0.0.1:9")  # a client, no request made
    wh = connect(FunctionConfig.from_env(env).warehouse)
    assert (wh.location, wh.maximum_bytes_billed) == ("EU", params.maximum_bytes_billed)


def test_a_bad_function_variable_is_named_by_its_variable():
    with pytest.raises(ParamsError) as e:
        FunctionConfig.from_env({"GCP_PROJECT_ID": "nba-props-platform", "TTL_DAYS": "0"})
    assert e.value.key == "TTL_DAYS" and "TTL_DAYS" in e.value.fix


def listening(url: str) -> bool:
    port = int(url.rstrip("/").rsplit(":", 1)[1].split("/")[0])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def start_serve(root: Path) -> tuple[subprocess.Popen, dict]:
    """Run `runbook function serve --env local` with its warehouse under `root` (its own lock);
    return it and the URLs and bundle it printed."""
    code = "from runbook_lib.cli import entry; entry()"
    env = {**os.environ, "RUNBOOK_ROOT": str(root), "RUNBOOK_PARAMS_DIR": str(paths.PARAMS_DIR)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "function", "serve", "--env", "local"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    printed = {}
    while "health" not in printed:
        try:  # a guard against a hang, not a timing assertion
            line = lines.get(timeout=120)
        except queue.Empty:
            proc.kill()
            pytest.fail(f"serve printed no health URL; got {printed}")
        key, _, value = line.strip().partition(" ")
        printed[key.rstrip(":").lower()] = value.strip()
    return proc, printed


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_serve_answers_health_and_a_stop_signal_stops_both_servers_and_removes_the_bundle(
    stop_signal, tmp_path
):
    proc, printed = start_serve(tmp_path)
    try:
        health = printed["health"]
        events = printed["pub/sub"].split()[-1]
        with urllib.request.urlopen(health, timeout=30) as response:  # noqa: S310
            assert json.load(response)["status"] == "healthy"
        assert listening(events)
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=60) == 0
        assert not listening(events) and not listening(health)
        assert "function-bundle-" in printed["serving"] and not Path(printed["serving"]).exists()
    finally:
        proc.kill()


def test_phase_deploy_on_local_counts_the_large_deletion_alert_in_its_own_receiver(
    bundle, wh, local_params
):
    alerts = local_params.alerts.model_copy(update={"large_deletion_rows": 4, "webhook_url": None})
    params = local_params.model_copy(update={"alerts": alerts})
    tomorrow = function_phase.next_scheduled_run(params)
    expected = cleanup.plan_cleanup(
        wh, params.tables, tomorrow.effective_today(), 7, 0.9, env="local"
    )
    deployment = function_phase.deploy(params, bundle, dry_run=False)
    try:
        receiver_url = deployment.alerts.url
        assert receiver_url.startswith("http://127.0.0.1:")
    finally:
        answer = function_phase.trigger_and_stop(deployment)
    assert answer["summary"]["total_records_deleted"] == expected.total_stale > 4
    assert answer["alerts"] == ["Unusually Large Deletion"]
    after = cleanup.plan_cleanup(wh, params.tables, tomorrow.effective_today(), 7, 0.9, env="local")
    audit_row = function_phase.audit_row(wh, params.tables, answer["summary"]["run_id"])
    checks = function_phase.run_checks(deployment, answer, expected, after, audit_row)
    assert all(ok for _, ok, _ in checks) and any("alerts" in name for name, _, _ in checks)
    record = function_phase.result_record(deployment, answer, audit_row)
    assert record["alerts"]["received"] == 1
    assert not listening(receiver_url)  # stopped with the server


def processes_of(server: local.LocalFunctionServer) -> list[int]:
    """Return the pids of a running server: gunicorn's master and its workers."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


@pytest.mark.parametrize("answered", [False, True], ids=["shutdown", "answered"])
def test_a_launched_server_answers_the_first_post_and_its_stop_leaves_no_process(
    bundle, local_params, fn_env, answered
):
    """launch does not wait for the port; post waits for it. stop (gunicorn's quick shutdown,
    or with every answer back its workers killed; the master killed once it has reaped its
    workers) leaves no process, not even a zombie, and keeps what the server printed."""
    server = local.LocalFunctionServer(bundle, "health", "http", fn_env).launch()
    try:
        status, text = server.post({}, b"")
        assert status == 200 and json.loads(text)["project"] == local_params.project
        pids = processes_of(server)
        assert len(pids) >= 2  # the master and at least one worker
    finally:
        server.stop(answered=answered)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not listening(server.url)
    assert server.output() is not None and not server.log_path.exists()


SLOW_MAIN = """import os, pathlib, time
import functions_framework

@functions_framework.http
def slow(request):
    time.sleep(2)
    pathlib.Path(os.environ["DONE_FILE"]).write_text("done")
    return "ok"
"""


def test_a_stop_after_a_post_left_unanswered_lets_the_running_request_finish(tmp_path):
    """stop(answered=True) kills workers only when every post got its answer: a post that timed
    out leaves its request running, and the quick shutdown lets it end (its file is written)."""
    (tmp_path / "main.py").write_text(SLOW_MAIN)
    done = tmp_path / "done.txt"
    server = local.LocalFunctionServer(tmp_path, "slow", "http", {"DONE_FILE": str(done)})
    server.start()
    try:
        with pytest.raises(OSError):  # urllib's timeout: the request is still running
            server.post({}, b"", timeout=0.3)
    finally:
        server.stop(answered=True)
    assert done.read_text() == "done"
    assert server.process.poll() is not None


def test_a_server_that_cannot_start_fails_the_trigger_and_is_stopped(
    bundle, wh, local_params, tmp_path
):
    """Phase 03 does not wait for the server at deploy: a bundle that cannot load fails the
    trigger with functions-framework's own words, and nothing is left running or listening."""
    broken = shutil.copytree(bundle, tmp_path / "broken")
    (broken / "main.py").write_text("raise ImportError('the bundle lost its library')\n")
    params = local_params.model_copy(
        update={"alerts": local_params.alerts.model_copy(update={"webhook_url": None})}
    )
    deployment = function_phase.deploy(params, broken, dry_run=False)
    receiver_url = deployment.alerts.url
    with pytest.raises(DeployError, match="(?s)functions-framework exited:.*lost its library"):
        function_phase.trigger_and_stop(deployment)
    assert deployment.server.process.poll() is not None
    assert not listening(receiver_url)
    assert stale(wh, params.tables) == 5  # nothing ran
