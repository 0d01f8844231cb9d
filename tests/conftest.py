"""Shared fixtures: params bound to a temporary local warehouse, fresh or seeded."""

from __future__ import annotations

import gc
import shutil
import sys
from pathlib import Path

import pytest

from runbook_lib import paths
from runbook_lib.run import lock
from runbook_lib.run.params import load_params
from runbook_lib.warehouse import connect

TODAY = "2025-04-10"
SOURCE_PARAMS = paths.PARAMS_DIR  # the project's own params, before any test points elsewhere
# The `runbook` command in a process of its own, from this interpreter.
RUNBOOK_PROCESS = [
    sys.executable,
    "-c",
    "from runbook_lib.cli import entry; entry()",
]


def pytest_collection_finish(session):
    """Move what the imports and the collection made out of the garbage collector's sight.

    Those objects live as long as the process; every full collection walked them all again
    (about 0.1 s each with pandas, pydantic and sqlglot loaded; phase 01 waits for its tests).
    Objects made afterwards, the tests' own, are collected as before.
    """
    gc.freeze()


@pytest.fixture
def tmp_params_dir(tmp_path, monkeypatch):
    """A params folder whose local.yaml keeps the warehouse, checkpoints and outputs under
    tmp_path, used by this process and by the `runbook` processes it starts; return it."""
    folder = tmp_path / "params"
    folder.mkdir()
    text = (SOURCE_PARAMS / "local.yaml").read_text()
    text = text.replace("outputs/local/warehouse", str(tmp_path / "warehouse"))
    text = text.replace("outputs/local/checkpoints", str(tmp_path / "checkpoints"))
    (folder / "local.yaml").write_text(text)
    monkeypatch.setattr(paths, "PARAMS_DIR", folder)
    monkeypatch.setenv("RUNBOOK_PARAMS_DIR", str(folder))
    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path / "outputs")
    monkeypatch.delenv(lock.RUN_ID_ENV, raising=False)
    return folder


@pytest.fixture
def local_params(tmp_path):
    """Params of the local environment with the warehouse and checkpoints under tmp_path."""
    return load_params(
        "local",
        {
            "warehouse_dir": str(tmp_path / "warehouse"),
            "backfill.checkpoint_dir": str(tmp_path / "checkpoints"),
            "today": TODAY,
        },
    )


@pytest.fixture(scope="session")
def empty_file(tmp_path_factory):
    """Create every declared table once per session, empty; tests get copies of the file."""
    from runbook_lib.platform.schema import ALL_TABLES

    folder = tmp_path_factory.mktemp("empty")
    params = load_params("local", {"warehouse_dir": str(folder), "today": TODAY})
    wh = connect(params)
    with wh.session():
        for schema in ALL_TABLES:
            wh.ensure_table(params.tables.id(schema), schema)
    return wh.path


@pytest.fixture
def empty_wh(local_params, empty_file):
    """A local warehouse with every declared table created and empty (a copy of `empty_file`)."""
    local_params.warehouse_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_file, local_params.warehouse_path / empty_file.name)
    return connect(local_params)


@pytest.fixture(autouse=True)
def _one_connection_per_safeguard_test(request):
    """Hold one connection to a safeguard test's warehouse for the whole test: the file is a
    copy thrown away with the test (DuckDBWarehouse.scratch_session).

    Phase 01 waits for the safeguard tests, and opening and closing the DuckDB file around each
    statement was half their time. They run in this process only, so nothing else needs the file
    meanwhile; the code under test opens its sessions inside this one, as it would in a kernel.
    """
    if (
        request.node.get_closest_marker("safeguard") is None
        or "empty_wh" not in request.fixturenames
    ):
        yield
        return
    with request.getfixturevalue("empty_wh").scratch_session():
        yield


@pytest.fixture(scope="session")
def seeded_file(tmp_path_factory):
    """Seed the synthetic league once per session; tests get copies of the file."""
    from runbook_lib.platform.league import seed_league

    folder = tmp_path_factory.mktemp("seeded")
    params = load_params("local", {"warehouse_dir": str(folder), "today": TODAY})
    seed_league(connect(params), params.tables, params.effective_today())
    return folder / f"{params.project}.duckdb"


@pytest.fixture
def seeded_wh(local_params, seeded_file):
    """A private copy of the seeded local warehouse."""
    local_params.warehouse_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(seeded_file, local_params.warehouse_path / seeded_file.name)
    return connect(local_params)


# -- Warehouse contract fixtures: the same cases on DuckDB and on BigQuery (bqemulator) ---------


@pytest.fixture(scope="session")
def bq_emulator():
    """Start bqemulator in-process once per session; yield its REST endpoint URL."""
    from runbook_lib.warehouse.emulator_server import running_emulator

    with running_emulator() as endpoint:
        yield endpoint


@pytest.fixture
def bq_wh(bq_emulator):
    """A BigQueryWarehouse on the emulator, in a fresh project of its own (no collisions)."""
    import uuid

    from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse
    from runbook_lib.warehouse.emulator import client_for

    project = f"emu-{uuid.uuid4().hex[:16]}"
    client = client_for(bq_emulator, project)
    return BigQueryWarehouse(project, run_id="test-run", client=client, endpoint=bq_emulator)


class WarehouseCase:
    """A warehouse of one backend (`.wh`) and its declared tables (`.tables`), all created."""

    def __init__(self, wh, tables):
        self.wh, self.tables = wh, tables
        self.backend = wh.backend


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request, tmp_path):
    """Yield a WarehouseCase on each backend: `.wh` (the Warehouse), `.tables` (its Tables).

    Every table of ALL_TABLES exists and is empty. On "duckdb" the warehouse is a file under
    tmp_path; on "bigquery" it is a fresh project on the session's bqemulator (see `bq_wh`).
    Write SQL once in BigQuery Standard SQL and assert the same answer on both.
    """
    from runbook_lib.config import DEFAULT_DATASETS
    from runbook_lib.platform.schema import ALL_TABLES, Tables
    from runbook_lib.warehouse.duckdb_backend import DuckDBWarehouse

    if request.param == "duckdb":
        wh = DuckDBWarehouse("nba-props-platform", tmp_path / "warehouse", run_id="test-run")
    else:
        wh = request.getfixturevalue("bq_wh")
    tables = Tables(wh.project, DEFAULT_DATASETS)
    with wh.session():
        for schema in ALL_TABLES:
            wh.ensure_table(tables.id(schema), schema)
    return WarehouseCase(wh, tables)


GCLOUD_STANDIN = Path(__file__).parent / "data" / "gcloud_standin" / "gcloud.py"


@pytest.fixture
def gcloud(tmp_path, monkeypatch) -> Path:
    """Put the stand-in on PATH as `gcloud` and `bq`; return its state file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, first in (("gcloud", ""), ("bq", " bq")):  # bq: the SDK's BigQuery command
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{GCLOUD_STANDIN}"{first} "$@"\n')
        script.chmod(0o755)
    state = tmp_path / "gcloud-state.json"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("GCLOUD_STATE", str(state))
    return state
