"""Shared fixtures: params bound to a temporary local warehouse, fresh or seeded."""

from __future__ import annotations

import shutil

import pytest

from runbook_lib.run.params import load_params
from runbook_lib.warehouse import connect

TODAY = "2025-04-10"


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


@pytest.fixture
def empty_wh(local_params):
    """A local warehouse with every declared table created and empty."""
    from runbook_lib.platform.schema import ALL_TABLES

    wh = connect(local_params)
    with wh.session():
        for schema in ALL_TABLES:
            wh.ensure_table(local_params.tables.id(schema), schema)
    return wh


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
