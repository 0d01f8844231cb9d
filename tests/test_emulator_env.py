"""`--env emulator`: the whole runbook on a BigQuery-API server (bqemulator) on 127.0.0.1.

The chain runs once, as a user types it, each command a process of its own: `runbook emulator
start`, `seed`, `run`, `rollback`, `verify`, `emulator stop` (about 66 s on 2 cores shared at load
~5, 2026-12-01: start ~4 s, seed ~12-17 s, phases 00-06 ~42-50 s, rollback ~10 s, stop ~4 s;
bench/README.md has the figures). Every phase but 01 (the checkout
and the safeguard tests, on a DuckDB file of their own) goes through google-cloud-bigquery.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib import paths
from runbook_lib.config import WarehouseConfig
from runbook_lib.errors import ParamsError
from runbook_lib.run.params import load_params, parse_params
from runbook_lib.warehouse import connect, emulator_server
from tests.conftest import RUNBOOK_PROCESS, SOURCE_PARAMS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def emulator_root(tmp_path):
    """A project root with the notebooks, and params whose emulator listens on a free port."""
    (tmp_path / "notebooks").symlink_to(paths.NOTEBOOKS_DIR)
    params = tmp_path / "params"
    params.mkdir()
    for source in SOURCE_PARAMS.glob("*.yaml"):
        text = source.read_text().replace("127.0.0.1:9050", f"127.0.0.1:{_free_port()}")
        (params / source.name).write_text(text)
    return tmp_path


def runbook(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `runbook ARGS` in a process of its own, with `root` as the project root."""
    env = {**os.environ, "RUNBOOK_ROOT": str(root), "RUNBOOK_PARAMS_DIR": str(root / "params")}
    return subprocess.run(
        [*RUNBOOK_PROCESS, *args], env=env, cwd=root, capture_output=True, text=True
    )


def _results(run_dir: Path, phase: str) -> dict:
    return json.loads((run_dir / "results" / f"{phase}.json").read_text())


def _emulator_params(root: Path):
    return load_params("emulator", params_dir=root / "params")


# -- params ---------------------------------------------------------------------------------------


def test_the_shipped_emulator_params_name_a_server_on_127_0_0_1():
    params = load_params("emulator", params_dir=SOURCE_PARAMS)
    assert params.backend == "bigquery" and params.engine == "emulator" and params.is_local
    assert params.bigquery.endpoint == "http://127.0.0.1:9050"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_refuse_an_endpoint(env):
    """An endpoint would send a cloud run, with anonymous credentials, to another server."""
    with pytest.raises(ParamsError) as caught:
        load_params(env, {"bigquery.endpoint": "http://127.0.0.1:9050"}, SOURCE_PARAMS)
    assert caught.value.key == "bigquery.endpoint" and "--env emulator" in str(caught.value)


@pytest.mark.parametrize(
    "endpoint", ["http://10.0.0.5:9050", "https://bigquery.googleapis.com", "127.0.0.1:9050"]
)
def test_an_endpoint_off_this_machine_is_refused(endpoint):
    """Anonymous credentials only go to a server on loopback."""
    with pytest.raises(ParamsError, match="not a BigQuery-API server on this machine"):
        load_params("emulator", {"bigquery.endpoint": endpoint}, SOURCE_PARAMS)


def test_without_an_endpoint_bigquery_is_googles_and_not_local():
    params = load_params("staging", params_dir=SOURCE_PARAMS)
    assert params.engine == "bigquery" and not params.is_local


def test_the_duckdb_backend_refuses_an_endpoint():
    text = (SOURCE_PARAMS / "local.yaml").read_text()
    with pytest.raises(ParamsError, match="duckdb backend has no endpoint"):
        parse_params(text, "local.yaml", {"bigquery.endpoint": "http://127.0.0.1:9050"})


def test_a_bigquery_warehouse_without_endpoint_never_gets_anonymous_credentials(monkeypatch):
    """No endpoint: Application Default Credentials, and none here is an error, not anonymous."""
    from runbook_lib.errors import WarehouseError

    monkeypatch.delenv("RUNBOOK_BIGQUERY_EMULATOR", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    config = WarehouseConfig(backend="bigquery", project="nba-props-staging")
    with pytest.raises(WarehouseError, match="no Google credentials"):
        connect(config)


# -- the server is needed, and said so -------------------------------------------------------------


def test_a_run_without_its_server_is_refused_before_anything_is_written(emulator_root):
    done = runbook(emulator_root, "run", "--env", "emulator", "--phases", "00")
    assert done.returncode == 1, done.stderr
    assert "no server answers" in done.stderr
    assert "runbook emulator start --env emulator" in done.stderr
    assert not (emulator_root / "outputs" / "emulator").exists()
    seed = runbook(emulator_root, "seed", "--env", "emulator")
    assert seed.returncode == 1 and "runbook emulator start" in seed.stderr


def test_emulator_commands_refuse_an_environment_without_endpoint(emulator_root):
    done = runbook(emulator_root, "emulator", "start", "--env", "local")
    assert done.returncode == 2 and "bigquery.endpoint" in done.stderr


# -- the server's parse cache ---------------------------------------------------------------------


def test_bqemulator_parses_a_sql_text_once_and_each_caller_gets_its_own_tree():
    """A kept tree handed out twice would carry one caller's in-place rewrite into the next."""
    import sqlglot
    from bqemulator.catalog.ddl_sync import _detect_catalog_drop
    from bqemulator.sql.translator import SQLTranslator

    emulator_server._patch_bqemulator()
    sql = "DROP TABLE `p.d.orders`"
    first = _detect_catalog_drop(sql)
    hits = sqlglot.parse_one.cache_info().hits
    first.this.set("this", sqlglot.exp.to_identifier("changed"))
    second = _detect_catalog_drop(sql)
    assert sqlglot.parse_one.cache_info().hits == hits + 1
    assert second is not first and second.this.name == "orders"
    assert second.sql("bigquery") == sqlglot.parse_one(sql, read="bigquery").sql("bigquery")
    query = "SELECT SAFE_DIVIDE(a, b) AS r FROM `p.d.t` WHERE d IN UNNEST(@days)"
    translator = SQLTranslator()
    assert translator.translate(query).value == translator.translate(query).value


def test_the_bigquery_backend_imports_nothing_a_fork_server_refuses_to_preload():
    """google-cloud-bigquery imports tqdm.notebook and so ipywidgets, which made the run's fork
    server refuse to fork any kernel once it preloaded the BigQuery backend."""
    from runbook_lib.run.forkserver_process import SHELL_AWARE

    code = (
        "import sys, runbook_lib.warehouse.bigquery_backend, google.cloud.bigquery\n"
        f"print([m for m in sys.modules if m.startswith({SHELL_AWARE + ('tqdm.notebook',)!r})])\n"
        "import tqdm.notebook, ipywidgets\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- the whole chain ------------------------------------------------------------------------------


def test_the_whole_runbook_runs_on_the_emulator(emulator_root):
    """start, seed with load jobs, run 00-06, rollback, verify, stop: every step on the
    BigQuery backend through google-cloud-bigquery; the tables say what each step did."""
    root = emulator_root
    params = _emulator_params(root)
    try:
        started = runbook(root, "emulator", "start", "--env", "emulator")
        assert started.returncode == 0, started.stderr
        assert f"at {params.bigquery.endpoint}" in started.stdout
        server = emulator_server.running(root / params.warehouse_dir)
        again = runbook(root, "emulator", "start", "--env", "emulator")
        assert again.returncode == 0 and "Already running" in again.stdout
        _seed_through_load_jobs(root, params)
        run_dir = _run_phases(root)
        _check_phases(run_dir)
        _rollback_and_verify(root, run_dir, params)
    finally:
        stopped = runbook(root, "emulator", "stop", "--env", "emulator")
    assert stopped.returncode == 0 and f"(pid {server.pid})" in stopped.stdout
    assert not emulator_server.answers(params.bigquery.endpoint, params.project)
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)


def _seed_through_load_jobs(root: Path, params) -> None:
    seeded = runbook(root, "seed", "--env", "emulator")
    assert seeded.returncode == 0, seeded.stderr
    assert "BigQuery-API server (bqemulator)" in seeded.stdout
    wh = connect(params)
    assert wh.backend == "bigquery" and wh.is_local
    assert wh.row_count(params.tables.pgs) == 108_761
    assert wh.row_count(params.tables.upcg, "game_date < '2025-04-03'") == 7_972
    # The seed ran load jobs, labelled with the app, never streaming inserts.
    jobs = list(wh.client.list_jobs(project=params.project, max_results=500))
    assert any(j.job_type == "load" for j in jobs)


def _run_phases(root: Path) -> Path:
    done = runbook(root, "run", "--env", "emulator")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [run_dir] = [p.parent for p in (root / "outputs" / "emulator").glob("*/manifest.json")]
    return run_dir


def _check_phases(run_dir: Path) -> None:
    records = json.loads((run_dir / "manifest.json").read_text())["records"]
    status = {r["phase"]: r["status"] for r in records}
    phases = ("00_preflight", "01_code_deployment", "02_data_cleanup", "03_cloud_function",
              "04_integration_test", "05_monitoring", "06_post_deployment")  # fmt: skip
    for phase in phases:
        assert status[phase] == "SUCCEEDED", phase
    notebook = (run_dir / "00_preflight.ipynb").read_text()
    assert "on the BigQuery-API server (bqemulator) at http://127.0.0.1:" in notebook
    cleanup = _results(run_dir, "02_data_cleanup")["results"]
    assert cleanup["rows_deleted"] == 8_782 and not cleanup["dry_run"]
    function = _results(run_dir, "03_cloud_function")["results"]["function"]
    assert function["served"] and function["audit_row"]["status"] == "success"
    assert function["rows_deleted"] == function["audit_row"]["total_records_deleted"] > 0
    coverage = _results(run_dir, "04_integration_test")["results"]["coverage"]
    assert {c["game_date"]: (c["actual"], c["expected"]) for c in coverage}["2023-02-23"] == (
        187,
        187,
    )


def _rollback_and_verify(root: Path, run_dir: Path, params) -> None:
    rolled = runbook(root, "rollback", "--run", str(run_dir))
    assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr[-3000:]
    restored = _results(run_dir, "90_rollback")["results"]["restored"]
    assert sorted(r["rows"] for r in restored) == [810, 7_972]
    assert all(r["verified"] and r["missing_after"] == 0 for r in restored)
    wh = connect(params)
    # Phase 02's and the function's deleted rows are back, except the function's own backup.
    assert wh.row_count(params.tables.upcg, "game_date < '2025-04-03'") == 7_972
    verified = runbook(root, "verify", str(run_dir))
    assert verified.returncode == 0 and "VERIFIED" in verified.stdout
