"""Warehouse access: one interface (`base.Warehouse`), a DuckDB and a BigQuery backend."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runbook_lib.run.params import Params
    from runbook_lib.warehouse.base import Warehouse

# The URL of a BigQuery-API server to use instead of Google's (anonymous credentials).
EMULATOR_ENV = "RUNBOOK_BIGQUERY_EMULATOR"


def connect(params: Params, run_id: str | None = None, read_only: bool = False) -> Warehouse:
    """Return the warehouse the params name, bound to their project.

    `read_only` opens the DuckDB file read-only (`runbook verify`): it never creates or writes
    the file, and while another process writes to it the open fails at once instead of taking
    the file from that writer. BigQuery reads take no lock, so it changes nothing there.
    """
    if params.backend == "duckdb":
        from runbook_lib.warehouse.duckdb_backend import DuckDBWarehouse

        return DuckDBWarehouse(params.project, params.warehouse_path, run_id, read_only)
    from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse

    client = None
    endpoint = os.environ.get(EMULATOR_ENV)
    if endpoint:  # a local BigQuery-API server (bqemulator), as the tests and benches run
        from runbook_lib.warehouse.emulator import client_for

        client = client_for(endpoint, params.project)
    return BigQueryWarehouse(
        params.project,
        location=params.location,
        run_id=run_id,
        maximum_bytes_billed=params.maximum_bytes_billed,
        client=client,
    )
