"""Warehouse access: one interface (`base.Warehouse`), a DuckDB and a BigQuery backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runbook_lib.run.params import Params
    from runbook_lib.warehouse.base import Warehouse


def connect(params: Params, run_id: str | None = None) -> Warehouse:
    """Return the warehouse the params name, bound to their project."""
    if params.backend == "duckdb":
        from runbook_lib.warehouse.duckdb_backend import DuckDBWarehouse

        return DuckDBWarehouse(params.project, params.warehouse_path, run_id=run_id)
    from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse

    return BigQueryWarehouse(
        params.project,
        location=params.location,
        run_id=run_id,
        maximum_bytes_billed=params.maximum_bytes_billed,
    )
