"""The one warehouse interface every part of the runbook uses.

SQL is BigQuery Standard SQL with named `@parameters`; table references come from TableId.sql.
Backends: `duckdb_backend` (embedded default) and `bigquery_backend`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import db_dtypes  # noqa: F401 - registers the "dbdate" pandas dtype
import pandas as pd

from runbook_lib.errors import DeleteCountMismatchError, TableExistsError, TableNotFoundError
from runbook_lib.warehouse.ids import TableId, check_name

if TYPE_CHECKING:
    from runbook_lib.platform.schema import TableSchema


class Warehouse(abc.ABC):
    """Query, change and copy tables of one project."""

    backend: str = "abstract"

    def __init__(self, project: str, run_id: str | None = None):
        self.project = project
        self.run_id = run_id

    # -- primitives each backend implements -------------------------------------------------
    @abc.abstractmethod
    def query(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        """Run a query with named parameters; DATE columns come back as db-dtypes dates."""

    @abc.abstractmethod
    def execute(self, sql: str, params: dict | None = None) -> int:
        """Run one DML or DDL statement; return the number of rows it affected (0 for DDL)."""

    @abc.abstractmethod
    def create_dataset(self, dataset: str) -> None:
        """Create a dataset if it does not exist."""

    @abc.abstractmethod
    def dataset_exists(self, dataset: str) -> bool:
        """Return whether a dataset exists."""

    @abc.abstractmethod
    def create_table(self, table: TableId, schema: TableSchema) -> None:
        """Create an empty table from a declared schema; an existing table is an error."""

    @abc.abstractmethod
    def table_exists(self, table: TableId) -> bool:
        """Return whether a table exists."""

    @abc.abstractmethod
    def list_tables(self, dataset: str) -> list[str]:
        """Return the table names of a dataset, sorted."""

    @abc.abstractmethod
    def drop_table(self, table: TableId) -> None:
        """Drop a table if it exists."""

    @abc.abstractmethod
    def load_dataframe(self, table: TableId, df: pd.DataFrame) -> int:
        """Append a DataFrame to an existing table with a load job; return rows loaded."""

    @abc.abstractmethod
    def _copy(self, source: TableId, dest: TableId, overwrite: bool) -> None:
        """Copy every row of source into dest (created if absent, replaced if overwrite)."""

    # -- shared behaviour ------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Warehouse]:
        """Hold whatever connection the backend needs for a block of operations."""
        yield self

    def row_count(self, table: TableId, where: str = "TRUE", params: dict | None = None) -> int:
        """Count rows of a table with SQL (BigQuery's table metadata is stale after DML)."""
        sql = f"SELECT COUNT(*) AS n FROM {table.sql} WHERE {where}"  # noqa: S608 - TableId is validated
        return int(self.query(sql, params)["n"].iloc[0])

    def ensure_table(self, table: TableId, schema: TableSchema) -> bool:
        """Create the dataset and table if missing; return whether the table was created."""
        if not self.dataset_exists(table.dataset):
            self.create_dataset(table.dataset)
        if self.table_exists(table):
            return False
        self.create_table(table, schema)
        return True

    def copy_table(self, source: TableId, dest: TableId, overwrite: bool = False) -> int:
        """Copy a table and return the destination's row count.

        Without `overwrite` an existing destination is refused (backups are never replaced);
        with it the destination is replaced atomically (restore from a backup).
        """
        if not self.table_exists(source):
            raise TableNotFoundError(str(source))
        if not overwrite and self.table_exists(dest):
            raise TableExistsError(str(dest))
        self._copy(source, dest, overwrite)
        return self.row_count(dest)

    def delete_exact(
        self, table: TableId, where: str, params: dict | None, expected_rows: int
    ) -> int:
        """Delete the rows matching `where` only if exactly `expected_rows` match.

        The guard is part of the one DELETE statement, so the count and the delete read the same
        snapshot on both backends: either exactly the planned rows go, or none do. An empty
        predicate or one that selects every row is refused by the callers, never here silently.
        """
        if not where.strip():
            raise ValueError("delete_exact needs a predicate; an empty one would mean all rows")
        params = dict(params or {})
        check_name("_expected_rows", "parameter")
        params["_expected_rows"] = int(expected_rows)
        sql = (
            f"DELETE FROM {table.sql} WHERE ({where}) AND "  # noqa: S608 - TableId is validated
            f"(SELECT COUNT(*) FROM {table.sql} WHERE ({where})) = @_expected_rows"
        )
        deleted = self.execute(sql, params)
        plain = {k: v for k, v in params.items() if k != "_expected_rows"}
        # A plan of 0 rows "matches" a guarded DELETE that deleted nothing: check it really is 0.
        if deleted != expected_rows or (deleted == 0 and self.row_count(table, where, plain)):
            actual = self.row_count(table, where, plain)
            raise DeleteCountMismatchError(str(table), expected_rows, actual)
        return deleted
