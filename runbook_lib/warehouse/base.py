"""The one warehouse interface every part of the runbook uses.

SQL is BigQuery Standard SQL with named `@parameters`; table references come from TableId.sql.
Backends: `duckdb_backend` (embedded default) and `bigquery_backend`.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import decimal
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import db_dtypes  # noqa: F401 - registers the "dbdate" pandas dtype
import numpy as np
import pandas as pd

from runbook_lib.errors import (
    DeleteContentMismatchError,
    DeleteCountMismatchError,
    TableExistsError,
    TableNotFoundError,
)
from runbook_lib.warehouse.ids import TableId, check_name

if TYPE_CHECKING:
    from runbook_lib.warehouse.schema import Field, TableSchema


_F = TypeVar("_F", bound=Callable[..., Any])


def one_connection(func: _F) -> _F:
    """Run `func(wh, ...)` with one connection of `wh` held for all its statements.

    Opening the embedded warehouse creates a DuckDB database instance: 30-45 ms on 2 cores
    (measured), paid by every statement run outside a session, while a connection opened beside
    a held one costs 0.1 ms. A library function that runs several statements therefore holds a
    session (Warehouse.session; sessions nest). Never on a function that lets another process
    open the same file midway (a function server, a `runbook` subprocess): DuckDB allows one
    writing process per file.
    """

    @functools.wraps(func)
    def held(wh: Warehouse, *args: Any, **kwargs: Any) -> Any:
        with wh.session():
            return func(wh, *args, **kwargs)

    return cast(_F, held)


# The low 28 bits of each fingerprint are summed: with at most 2**35 rows the sum fits INT64.
_LOW_BITS = 268435455
# Set to a file path, every statement a warehouse runs is appended there as a JSON line: its
# SQL, its parameters' BigQuery types and the module that sent it (tests type them with sqlglot).
SQL_TRACE_ENV = "RUNBOOK_SQL_TRACE"
_BACKENDS = ("runbook_lib.warehouse.duckdb_backend", "runbook_lib.warehouse.bigquery_backend")


def scalar_type(value) -> str:
    """Return the BigQuery type of a Python parameter value."""
    # Order matters: bool is an int, datetime is a date.
    if isinstance(value, (bool, np.bool_)):
        return "BOOL"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, (int, np.integer)):
        return "INT64"
    if isinstance(value, (float, np.floating)):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        return "NUMERIC"
    if isinstance(value, str) or value is None:
        # A NULL travels as STRING; cast it in SQL where another type is needed.
        return "STRING"
    raise TypeError(f"cannot send a {type(value).__name__} as a query parameter")


def parameter_types(params: dict | None) -> dict[str, str]:
    """Return each parameter's BigQuery type: `T`, or `ARRAY<T>` for a list."""
    out = {}
    for name, value in (params or {}).items():
        if isinstance(value, (list, tuple)):
            typed = [v for v in value if v is not None]
            out[name] = f"ARRAY<{scalar_type(typed[0])}>" if typed else "ARRAY<STRING>"
        else:
            out[name] = scalar_type(value)
    return out


def trace(sql: str, params: dict | None) -> None:
    """Append one statement to the $RUNBOOK_SQL_TRACE file, when it is set."""
    path = os.environ.get(SQL_TRACE_ENV)
    if not path:
        return
    frame, sender = sys._getframe(1), ""
    while frame is not None and not sender:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("runbook_lib.") and name not in (__name__, *_BACKENDS):
            sender = name
        frame = frame.f_back
    line = json.dumps({"sql": sql, "params": parameter_types(params), "sender": sender or __name__})
    with open(path, "a", encoding="utf-8") as f:  # one write per line, appended
        f.write(line + "\n")


@dataclass(frozen=True)
class RowsDigest:
    """What identifies a set of rows by their key: how many, and two folds of key fingerprints.

    `xor` (BIT_XOR of FARM_FINGERPRINT of each row's key) changes when any one row is swapped for
    another; `low_sum` (the sum of the fingerprints' low 28 bits) also changes when a pair of
    duplicate rows is swapped, which XOR alone cancels out.
    """

    key: tuple[str, ...]
    rows: int
    xor: int
    low_sum: int


def _key_fingerprint(key: tuple[str, ...]) -> str:
    for column in key:
        check_name(column, "column")
    parts = ", '|', ".join(f"IFNULL(CAST({c} AS STRING), '<NULL>')" for c in key)
    return f"FARM_FINGERPRINT(CONCAT({parts}))"


def _digest_columns(key: tuple[str, ...]) -> str:
    fp = _key_fingerprint(key)
    return (
        f"COUNT(*) AS n, IFNULL(BIT_XOR({fp}), 0) AS x, "
        f"CAST(IFNULL(SUM({fp} & {_LOW_BITS}), 0) AS INT64) AS s"
    )


class Warehouse(abc.ABC):
    """Query, change and copy tables of one project."""

    backend: str = "abstract"
    # Where the datasets must be and the jobs run (BigQuery); the embedded warehouse has none.
    location: str | None = None

    def __init__(self, project: str, run_id: str | None = None):
        self.project = project
        self.run_id = run_id

    @property
    def is_local(self) -> bool:
        """Return whether the warehouse lives on this machine (nobody else's data)."""
        return False

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
    def live_schema(self, table: TableId) -> TableSchema | None:
        """Return the table's columns (BigQuery types and modes) and partitioning as they are in
        the warehouse, or None when the table does not exist."""

    @abc.abstractmethod
    def add_column(self, table: TableId, field: Field) -> None:
        """Add one NULLABLE column to an existing table (never drops or retypes one)."""

    @abc.abstractmethod
    def list_tables(self, dataset: str) -> list[str]:
        """Return the table names of a dataset, sorted."""

    @abc.abstractmethod
    def drop_table(self, table: TableId) -> None:
        """Drop a table if it exists."""

    @abc.abstractmethod
    def reset(self, datasets: list[str], keep: tuple[str, ...] = ()) -> None:
        """Remove every table of the datasets but those named in `keep` (the seed starts from
        nothing but the writer's lock, where the lock is a table)."""

    @abc.abstractmethod
    def load_dataframe(self, table: TableId, df: pd.DataFrame) -> int:
        """Append a DataFrame to an existing table with a load job; return rows loaded."""

    @abc.abstractmethod
    def _copy(self, source: TableId, dest: TableId, overwrite: bool) -> None:
        """Copy every row of source into dest (created if absent, replaced if overwrite)."""

    # -- shared behaviour ------------------------------------------------------------------
    def dataset_location(self, dataset: str) -> str | None:
        """Return where a dataset lives ("" when it has no location), None when it is missing."""
        return "" if self.dataset_exists(dataset) else None

    def granted_permissions(self, table: TableId, permissions: list[str]) -> set[str] | str:
        """Return which `permissions` the caller holds on `table`, or why that is not known.

        The embedded warehouse is a file of the OS user's: no IAM, every permission is held.
        """
        return set(permissions)

    def can_create_jobs(self) -> bool | str:
        """Return whether the caller may run jobs in the project, or why that is not known."""
        return True

    def location_problem(self, dataset: str, found: str | None) -> str | None:
        """Return how a dataset's location `found` differs from this warehouse's, or None."""
        if not self.location or not found or found.upper() == self.location.upper():
            return None
        return (
            f"dataset {dataset} is in {found}, the params say {self.location} (to fix this, set "
            f"location: {found} in the params file: jobs run where their datasets are)"
        )

    @contextmanager
    def session(self) -> Iterator[Warehouse]:
        """Hold whatever connection the backend needs for a block of operations."""
        yield self

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Warehouse]:
        """Run the block's `execute` statements as one transaction: every one lands, or none.

        Only DML belongs inside (no load jobs, no DDL): on BigQuery the block is a session's
        multi-statement transaction. A process killed inside it commits nothing.
        """

    def row_count(self, table: TableId, where: str = "TRUE", params: dict | None = None) -> int:
        """Count rows of a table with SQL (BigQuery's table metadata is stale after DML)."""
        sql = f"SELECT COUNT(*) AS n FROM {table.sql} WHERE {where}"  # noqa: S608 - TableId is validated
        return int(self.query(sql, params)["n"].iloc[0])

    def rows_digest(
        self, table: TableId, key: tuple[str, ...], where: str = "TRUE", params: dict | None = None
    ) -> RowsDigest:
        """Return the digest of the rows matching `where`, computed in one query in the warehouse."""
        sql = f"SELECT {_digest_columns(tuple(key))} FROM {table.sql} WHERE {where}"  # noqa: S608
        row = self.query(sql, params).iloc[0]
        return RowsDigest(tuple(key), int(row["n"]), int(row["x"]), int(row["s"]))

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
        self,
        table: TableId,
        where: str,
        params: dict | None,
        expected_rows: int,
        digest: RowsDigest | None = None,
    ) -> int:
        """Delete the rows matching `where` only if exactly `expected_rows` (and `digest`) match.

        The guard is part of the one DELETE statement, so the guard and the delete read the same
        snapshot on both backends: either exactly the planned rows go, or none do. With `digest`
        the guard also compares the rows' key digest (`rows_digest`), so a swap of one planned row
        for another with the same count deletes nothing. An empty predicate or one that selects
        every row is refused by the callers, never here silently.
        """
        if not where.strip():
            raise ValueError("delete_exact needs a predicate; an empty one would mean all rows")
        if digest is not None and digest.rows != expected_rows:
            raise ValueError(f"digest of {digest.rows} rows given for {expected_rows} rows")
        params = dict(params or {})
        guard = "COUNT(*) = @_expected_rows"
        params["_expected_rows"] = int(expected_rows)
        if digest is not None:
            fp = _key_fingerprint(digest.key)
            guard += (
                f" AND IFNULL(BIT_XOR({fp}), 0) = @_expected_xor"
                f" AND IFNULL(SUM({fp} & {_LOW_BITS}), 0) = @_expected_sum"
            )
            params.update(_expected_xor=digest.xor, _expected_sum=digest.low_sum)
        sql = (
            f"DELETE FROM {table.sql} WHERE ({where}) AND "  # noqa: S608 - TableId is validated
            f"(SELECT {guard} FROM {table.sql} WHERE ({where}))"
        )
        deleted = self.execute(sql, params)
        plain = {k: v for k, v in params.items() if not k.startswith("_expected")}
        # A plan of 0 rows "matches" a guarded DELETE that deleted nothing: check it really is 0.
        if deleted != expected_rows or (deleted == 0 and self.row_count(table, where, plain)):
            actual = self.row_count(table, where, plain)
            if digest is not None and actual == expected_rows:
                raise DeleteContentMismatchError(str(table), expected_rows)
            raise DeleteCountMismatchError(str(table), expected_rows, actual)
        return deleted
