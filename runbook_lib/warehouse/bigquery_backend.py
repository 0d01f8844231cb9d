"""The BigQuery warehouse, through google-cloud-bigquery.

Every job carries a label with the run id and, for queries, the params' maximum_bytes_billed.
Rows arrive with load jobs, never streaming inserts: BigQuery cannot run DML on rows still in
the streaming buffer, and the cleanup and backfill delete and merge right after loading.
"""

from __future__ import annotations

import concurrent.futures
import decimal
import logging
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import db_dtypes  # noqa: F401 - registers the "dbdate" pandas dtype
import numpy as np
import pandas as pd
from google.api_core import exceptions as gexc

from runbook_lib.errors import (
    EnvironmentMismatchError,
    JobExistsError,
    TableExistsError,
    TableNotFoundError,
    WarehouseError,
)
from runbook_lib.warehouse.base import Warehouse, scalar_type, trace
from runbook_lib.warehouse.bigquery_import import bigquery
from runbook_lib.warehouse.ids import TableId, check_name, check_project
from runbook_lib.warehouse.schema import Field, TableSchema

log = logging.getLogger(__name__)
EMULATOR_NO_TRANSACTIONS = (
    "bqemulator has no per-session transactions (its BEGIN TRANSACTION takes the one shared "
    "connection of the server): on the emulator a transaction's statements run one by one, "
    "not all-or-nothing; on BigQuery they are one transaction"
)
# The legacy names the API may report for standard SQL types.
_LEGACY_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
_LABEL_RE = re.compile(r"[^a-z0-9_-]")
_PARTITION_EXPR = re.compile(r"DATE\(\s*(\w+)\s*\)|(\w+)", re.IGNORECASE)
# Every job's limit: queries carry it as their job timeout, loads and copies are waited for so long.
JOB_TIMEOUT_S = 600
_EXISTING_JOB = re.compile(r"Already Exists: Job ([\w.:-]+)")
_MISSING_TABLE = re.compile(r"Table ([\w.:-]+) was not found")


def label_value(value: str | None) -> str:
    """Return `value` as a BigQuery label value: lowercase [a-z0-9_-], at most 63 chars."""
    return _LABEL_RE.sub("_", (value or "none").lower())[:63]


RESOURCE_MANAGER = "https://cloudresourcemanager.googleapis.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JOBS_CREATE = "bigquery.jobs.create"


def _plain(value):
    """Return a numpy scalar as the Python value the client serialises."""
    return value.item() if isinstance(value, np.generic) else value


def query_parameters(params: dict | None) -> list:
    """Return named BigQuery query parameters inferred from Python values."""
    out = []
    for name, value in (params or {}).items():
        check_name(name, "parameter")
        if isinstance(value, (list, tuple)):
            typed = [v for v in value if v is not None]
            if not typed:
                raise ValueError(
                    f"parameter @{name} is an empty list, whose element type cannot be inferred "
                    f"(to fix this, skip the query when there is nothing to select)"
                )
            kind = scalar_type(typed[0])
            out.append(bigquery.ArrayQueryParameter(name, kind, [_plain(v) for v in value]))
        else:
            out.append(bigquery.ScalarQueryParameter(name, scalar_type(value), _plain(value)))
    return out


def _not_found(e: gexc.NotFound, table: TableId | None) -> TableNotFoundError:
    if table is not None:
        return TableNotFoundError(str(table))
    found = _MISSING_TABLE.search(e.message or "")
    return TableNotFoundError(found.group(1) if found else (e.message or str(e)))


@contextmanager
def _quiet_pandas_gbq() -> Iterator[None]:
    """Silence the client's advice to use pandas-gbq; its DataFrame paths work unchanged."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pandas.gbq.*")
        warnings.filterwarnings("ignore", message=".*pandas_gbq.*")
        yield


@contextmanager
def _translated(table: TableId | None = None, sql: str | None = None) -> Iterator[None]:
    """Turn google.api_core errors into the runbook's errors."""
    try:
        yield
    except gexc.NotFound as e:
        raise _not_found(e, table) from e
    except gexc.Conflict as e:
        # A 409 names what exists: a job (a retried insert whose first attempt went through)
        # is no table, and "table exists" would send the reader after the wrong thing.
        job = _EXISTING_JOB.search(e.message or "")
        if job:
            raise JobExistsError(job.group(1)) from e
        raise TableExistsError(str(table) if table else e.message) from e
    except gexc.BadRequest as e:
        # The emulator answers a copy onto a non-empty table with 400 instead of 409.
        if table is not None and "WRITE_EMPTY" in (e.message or ""):
            raise TableExistsError(str(table)) from e
        raise WarehouseError(f"{e.message}" + (f"\nSQL: {sql}" if sql else "")) from e
    except gexc.GoogleAPICallError as e:
        raise WarehouseError(f"{type(e).__name__}: {e.message}") from e


def _default_client(project: str, location: str) -> bigquery.Client:
    """Return a client from Application Default Credentials, refusing another project's."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, cred_project = google.auth.default(
            scopes=["https://www.googleapis.com/auth/bigquery"]
        )
    except DefaultCredentialsError as e:
        raise WarehouseError(
            f"no Google credentials for {project}: {e} (to fix this, run "
            f"`gcloud auth application-default login` and `gcloud config set project {project}`)"
        ) from e
    # Credentials that name another project mean the shell points at another environment.
    if cred_project and cred_project != project:
        raise EnvironmentMismatchError(project, cred_project, "credentials project")
    return bigquery.Client(project=project, credentials=credentials, location=location)


class BigQueryWarehouse(Warehouse):
    """The warehouse in a BigQuery project; SQL runs as written."""

    backend = "bigquery"

    def __init__(
        self,
        project: str,
        location: str = "US",
        run_id: str | None = None,
        maximum_bytes_billed: int | None = None,
        client: bigquery.Client | None = None,
        endpoint: str | None = None,
    ):
        super().__init__(check_project(project), run_id)
        # The BigQuery-API server on this machine (bqemulator) the client talks to, if any.
        self.endpoint = endpoint
        self._tx = threading.local()  # this thread's open transaction's session
        self.location = location
        self.maximum_bytes_billed = maximum_bytes_billed
        self.client = client or _default_client(project, location)
        # Environment binding: a client for another project aborts before any side effect.
        if self.client.project != project:
            raise EnvironmentMismatchError(project, self.client.project, "BigQuery client project")
        self.labels = {"runbook_run_id": label_value(run_id), "app": "backfill-runbook"}

    @property
    def is_local(self) -> bool:
        """Return whether the warehouse is a BigQuery-API server on this machine."""
        return self.endpoint is not None

    def _bind(self, table: TableId) -> TableId:
        """Refuse a table of another project than the one the params name."""
        if table.project != self.project:
            raise EnvironmentMismatchError(self.project, table.project, f"project of {table}")
        return table

    def _dataset_ref(self, dataset: str) -> str:
        return f"{self.project}.{check_name(dataset, 'dataset')}"

    # -- queries -----------------------------------------------------------------------------
    def _run(self, sql: str, params: dict | None, **extra):
        session = getattr(self._tx, "session_id", None)
        if session is not None:
            extra["connection_properties"] = [bigquery.ConnectionProperty("session_id", session)]
        trace(sql, params)
        config = bigquery.QueryJobConfig(
            query_parameters=query_parameters(params),
            labels=self.labels,
            maximum_bytes_billed=self.maximum_bytes_billed,
            job_timeout_ms=JOB_TIMEOUT_S * 1000,
            **extra,
        )
        with _translated(sql=sql):
            return self.client.query_and_wait(
                sql, job_config=config, location=self.location, wait_timeout=JOB_TIMEOUT_S
            )

    @contextmanager
    def transaction(self) -> Iterator[BigQueryWarehouse]:
        """A multi-statement transaction in a session of its own (per thread): BEGIN opens the
        session, the block's statements run in it, COMMIT ends it; an error rolls back. A
        process killed inside never commits: BigQuery rolls the transaction back with its
        session.

        On the emulator the statements run one by one, and a WARNING says so: bqemulator 1.4.0
        opens a session's BEGIN TRANSACTION on its one shared DuckDB connection, so concurrent
        sessions would share it and one failed statement aborts every later request.
        """
        if self.endpoint is not None:
            log.warning(EMULATOR_NO_TRANSACTIONS)
            yield self
            return
        if getattr(self._tx, "session_id", None) is not None:
            raise WarehouseError(
                "a transaction is already open on this thread (to fix this, "
                "do the work in the open transaction)"
            )
        with _translated():
            job = self.client.query(
                "BEGIN TRANSACTION",
                job_config=bigquery.QueryJobConfig(create_session=True, labels=self.labels),
                location=self.location,
            )
            job.result()
        self._tx.session_id = job.session_info.session_id
        try:
            yield self
        except BaseException:
            try:
                self._end_transaction("ROLLBACK TRANSACTION")
            except WarehouseError as e:  # a failed statement may have ended it already
                log.warning("rollback of the failed transaction: %s", e)
            raise
        self._end_transaction("COMMIT TRANSACTION")

    def _end_transaction(self, statement: str) -> None:
        try:
            self._run(statement, None)
        finally:
            self._tx.session_id = None

    def query(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        rows = self._run(sql, params)
        # Never the Storage API: it needs another permission and the emulator does not serve it.
        with _translated(sql=sql), _quiet_pandas_gbq():
            return rows.to_dataframe(create_bqstorage_client=False)

    def execute(self, sql: str, params: dict | None = None) -> int:
        return int(self._run(sql, params).num_dml_affected_rows or 0)

    # -- datasets and tables -------------------------------------------------------------------
    def create_dataset(self, dataset: str) -> None:
        ds = bigquery.Dataset(self._dataset_ref(dataset))
        ds.location = self.location
        with _translated():
            self.client.create_dataset(ds, exists_ok=True)

    def dataset_exists(self, dataset: str) -> bool:
        return self.dataset_location(dataset) is not None

    def dataset_location(self, dataset: str) -> str | None:
        try:
            return self.client.get_dataset(self._dataset_ref(dataset)).location or ""
        except gexc.NotFound:
            return None

    def granted_permissions(self, table: TableId, permissions: list[str]) -> set[str] | str:
        """Ask tables.testIamPermissions; say so by name when the server does not answer it."""
        try:
            answer = self.client.test_iam_permissions(str(self._bind(table)), list(permissions))
        except gexc.GoogleAPICallError as e:
            # Real BigQuery answers an empty set for a missing table; a 404 or 501 here means the
            # server lacks the method (bqemulator serves it only for row access policies).
            return f"not checked: the BigQuery API server does not answer tables.testIamPermissions ({e.code})"
        return set(answer.get("permissions", []))

    def can_create_jobs(self) -> bool | str:
        """Ask Resource Manager's projects.testIamPermissions for bigquery.jobs.create."""
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        url = f"{RESOURCE_MANAGER}/v1/projects/{self.project}:testIamPermissions"
        try:
            credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
            answer = AuthorizedSession(credentials).post(
                url, json={"permissions": [JOBS_CREATE]}, timeout=30
            )
            answer.raise_for_status()
        except Exception as e:  # noqa: BLE001 - no credentials, no network, a refusal: say which
            return f"not checked: projects.testIamPermissions did not answer ({type(e).__name__})"
        return JOBS_CREATE in answer.json().get("permissions", [])

    def create_table(self, table: TableId, schema: TableSchema) -> None:
        bq_table = bigquery.Table(
            str(self._bind(table)),
            schema=[bigquery.SchemaField(f.name, f.type, mode=f.mode) for f in schema.fields],
        )
        if schema.partition_by:
            # "game_date" or "DATE(created_at)": both are daily partitions on that column.
            column = _PARTITION_EXPR.fullmatch(schema.partition_by.strip())
            if column is None:
                raise ValueError(f"{schema.name}: unsupported partition_by {schema.partition_by!r}")
            bq_table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=column.group(1) or column.group(2)
            )
        if schema.cluster_by:
            bq_table.clustering_fields = list(schema.cluster_by)
        bq_table.description = schema.description or None
        with _translated(table):
            self.client.create_table(bq_table)

    def live_schema(self, table: TableId) -> TableSchema | None:
        try:
            live = self.client.get_table(str(self._bind(table)))
        except gexc.NotFound:
            return None
        fields = tuple(
            Field(f.name, _LEGACY_TYPES.get(f.field_type, f.field_type), f.mode or "NULLABLE")
            for f in live.schema
        )
        partition = live.time_partitioning.field if live.time_partitioning else None
        cluster = tuple(live.clustering_fields or ())
        return TableSchema("", table.table, fields, partition_by=partition, cluster_by=cluster)

    def add_column(self, table: TableId, field: Field) -> None:
        # DDL: bqemulator records a column patched into the table's schema in its catalog only,
        # never in the stored table, and one added by DDL in the stored table only; BigQuery
        # does both with the DDL. So the catalog is patched after it where it still lacks it.
        column = check_name(field.name, "column")
        self.execute(f"ALTER TABLE {self._bind(table).sql} ADD COLUMN {column} {field.type}")
        with _translated(table):
            live = self.client.get_table(str(table))
            if column not in {f.name for f in live.schema}:
                live.schema = [*live.schema, bigquery.SchemaField(column, field.type)]
                self.client.update_table(live, ["schema"])

    def table_exists(self, table: TableId) -> bool:
        try:
            self.client.get_table(str(self._bind(table)))
        except gexc.NotFound:
            return False
        return True

    def list_tables(self, dataset: str) -> list[str]:
        try:
            return sorted(t.table_id for t in self.client.list_tables(self._dataset_ref(dataset)))
        except gexc.NotFound:
            return []

    def drop_table(self, table: TableId) -> None:
        with _translated(table):
            self.client.delete_table(str(self._bind(table)), not_found_ok=True)

    def reset(self, datasets: list[str], keep: tuple[str, ...] = ()) -> None:
        for dataset in datasets:
            for name in self.list_tables(dataset):
                if name not in keep:
                    self.drop_table(TableId(self.project, dataset, name))

    # -- loads and copies ----------------------------------------------------------------------
    def load_dataframe(self, table: TableId, df: pd.DataFrame) -> int:
        with _translated(table):
            declared = self.client.get_table(str(self._bind(table))).schema
        unknown = sorted(set(df.columns) - {f.name for f in declared})
        if unknown:
            raise WarehouseError(f"{table} has no column(s) {', '.join(unknown)}")
        frame = _conform(df, declared)
        config = bigquery.LoadJobConfig(
            schema=declared,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            labels=self.labels,
        )
        with _translated(table), _quiet_pandas_gbq():
            job = self.client.load_table_from_dataframe(
                frame, str(table), job_config=config, location=self.location
            )
            _wait(job)
        # A load job is atomic (no bad records allowed), so success means every row landed.
        return len(frame)

    def _copy(self, source: TableId, dest: TableId, overwrite: bool) -> None:
        # WRITE_EMPTY: a backup never lands on a table holding rows (BigQuery's "duplicate" error).
        disposition = (
            bigquery.WriteDisposition.WRITE_TRUNCATE
            if overwrite
            else bigquery.WriteDisposition.WRITE_EMPTY
        )
        config = bigquery.CopyJobConfig(
            write_disposition=disposition,
            create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
            labels=self.labels,
        )
        with _translated(dest):
            job = self.client.copy_table(
                str(self._bind(source)),
                str(self._bind(dest)),
                job_config=config,
                location=self.location,
            )
            _wait(job)


def _wait(job) -> None:
    """Wait for a load or copy job at most JOB_TIMEOUT_S; its error names the job."""
    try:
        job.result(timeout=JOB_TIMEOUT_S)
    except gexc.GoogleAPICallError as e:
        e.message = f"job {job.project}:{job.location}.{job.job_id}: {e.message}"
        raise
    except concurrent.futures.TimeoutError as e:
        raise WarehouseError(
            f"job {job.project}:{job.location}.{job.job_id} did not finish within "
            f"{JOB_TIMEOUT_S} s (to fix this, look the job up with `bq show -j {job.job_id}`; "
            "it may still finish)"
        ) from e


def _conform(df: pd.DataFrame, declared: list[bigquery.SchemaField]) -> pd.DataFrame:
    """Return `df` with every declared column, in order, with values the load accepts."""
    frame = pd.DataFrame(index=df.index)
    for f in declared:
        series = df[f.name] if f.name in df.columns else pd.Series([None] * len(df), index=df.index)
        if f.field_type == "NUMERIC" and series.dtype.kind == "f":
            # Parquet cannot turn a float into NUMERIC: go through the 9-digit decimal it holds.
            series = series.map(lambda v: None if pd.isna(v) else decimal.Decimal(f"{v:.9f}"))
        elif f.field_type == "DATE" and series.dtype.kind == "M":
            series = series.dt.date.astype("dbdate")
        frame[f.name] = series
    return frame
