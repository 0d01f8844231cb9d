"""Warehouse access: one interface (`base.Warehouse`), a DuckDB and a BigQuery backend."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runbook_lib.config import WarehouseConfig
    from runbook_lib.warehouse.base import Warehouse

# The URL of a BigQuery-API server to use instead of Google's (anonymous credentials), for
# tests that run a staging-like environment (no endpoint in its params) against bqemulator.
# An environment of its own on such a server says so in its params: bigquery.endpoint.
EMULATOR_ENV = "RUNBOOK_BIGQUERY_EMULATOR"


def connect(
    config: WarehouseConfig, run_id: str | None = None, read_only: bool = False
) -> Warehouse:
    """Return the warehouse a warehouse section names, bound to its project.

    `read_only` opens the DuckDB file read-only (`runbook verify`): it never creates or writes
    the file, and while another process writes to it the open fails at once instead of taking
    the file from that writer. BigQuery reads take no lock, so it changes nothing there.
    """
    if config.backend == "duckdb":
        from runbook_lib.warehouse.duckdb_backend import DuckDBWarehouse

        return DuckDBWarehouse(config.project, config.warehouse_path, run_id, read_only)
    from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse

    client = None
    endpoint = config.bigquery.endpoint or os.environ.get(EMULATOR_ENV)
    if endpoint:  # a BigQuery-API server on this machine (bqemulator): anonymous credentials
        from runbook_lib.warehouse.emulator import client_for

        client = client_for(endpoint, config.project)
    return BigQueryWarehouse(
        config.project,
        location=config.location,
        run_id=run_id,
        maximum_bytes_billed=config.maximum_bytes_billed,
        client=client,
        endpoint=endpoint or None,
    )
