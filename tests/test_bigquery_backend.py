"""The BigQuery backend: what it sends to real BigQuery, beyond the shared contract.

Environment binding, job labels and byte caps, declared partitioning and clustering, parameter
typing. Runs against bqemulator through the real client (fixtures in conftest.py).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pytest

from runbook_lib.errors import EnvironmentMismatchError
from runbook_lib.platform.schema import PGS, SCHEDULE
from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse, query_parameters
from runbook_lib.warehouse.emulator import client_for
from runbook_lib.warehouse.ids import TableId
from tests.test_warehouse_contract import schedule_rows

D = dt.date


def test_bigquery_client_of_another_project_is_refused(bq_emulator):
    with pytest.raises(EnvironmentMismatchError) as err:
        BigQueryWarehouse("nba-props-platform", client=client_for(bq_emulator, "nba-props-staging"))
    assert (err.value.expected, err.value.actual) == ("nba-props-platform", "nba-props-staging")


def test_bigquery_table_of_another_project_is_refused_before_any_change(bq_wh):
    foreign = TableId("nba-props-platform", "nba_reference", "nba_schedule")
    with pytest.raises(EnvironmentMismatchError):
        bq_wh.create_table(foreign, SCHEDULE)
    with pytest.raises(EnvironmentMismatchError):
        bq_wh.drop_table(foreign)
    assert not bq_wh.dataset_exists("nba_reference")


def test_bigquery_tables_carry_declared_partitioning_and_clustering(bq_wh):
    table = TableId(bq_wh.project, "nba_analytics", PGS.name)
    bq_wh.ensure_table(table, PGS)
    got = bq_wh.client.get_table(str(table))
    assert got.time_partitioning.field == "game_date"
    assert got.time_partitioning.type_ == "DAY"
    assert got.clustering_fields == list(PGS.cluster_by)
    assert [(f.name, f.field_type, f.mode) for f in got.schema] == [
        (f.name, f.type, f.mode) for f in PGS.fields
    ]


def test_bigquery_jobs_carry_the_run_id_label_and_the_byte_cap(bq_emulator):
    project = f"emu-{uuid.uuid4().hex[:16]}"
    wh = BigQueryWarehouse(
        project,
        run_id="Run 2026-01-06T04:00Z",
        maximum_bytes_billed=10**9,
        client=client_for(bq_emulator, project),
    )
    # bqemulator does not record the labels of a synchronous jobs.query, so read what the
    # client sends (a pass-through spy) for queries, and the emulator's job list for the rest.
    sent = []
    api_request = wh.client._connection.api_request

    def spy(*args, **kwargs):
        sent.append(kwargs)
        return api_request(*args, **kwargs)

    wh.client._connection.api_request = spy
    table = TableId(project, "nba_reference", "nba_schedule")
    wh.ensure_table(table, SCHEDULE)
    wh.load_dataframe(table, schedule_rows(2))
    wh.copy_table(table, table.with_table("nba_schedule_backup"))
    label = {"runbook_run_id": "run_2026-01-06t04_00z", "app": "backfill-runbook"}
    queries = [r["data"] for r in sent if r.get("path", "").endswith("/queries")]
    assert queries and all(q["labels"] == label for q in queries)
    assert all(q["maximumBytesBilled"] == str(10**9) for q in queries)
    jobs = [j for j in wh.client.list_jobs(project=project) if j.job_type in ("load", "copy")]
    assert sorted(j.job_type for j in jobs) == ["copy", "load"]
    assert all(j.labels == label for j in jobs)


def test_bigquery_parameters_are_typed_from_python_values():
    params = query_parameters(
        {
            "d": D(2023, 2, 23),
            "ts": dt.datetime(2023, 2, 23, tzinfo=dt.UTC),
            "b": False,
            "i": 3,
            "f": 0.5,
            "s": "x",
            "n": decimal.Decimal("1.5"),
            "ds": [D(2023, 2, 23)],
        }
    )
    kinds = {p.name: getattr(p, "type_", None) or p.array_type for p in params}
    assert kinds == {
        "d": "DATE",
        "ts": "TIMESTAMP",
        "b": "BOOL",
        "i": "INT64",
        "f": "FLOAT64",
        "s": "STRING",
        "n": "NUMERIC",
        "ds": "DATE",
    }
    with pytest.raises(ValueError, match="empty list"):
        query_parameters({"ids": []})


def test_bigquery_credentials_of_another_project_are_refused(tmp_path, monkeypatch):
    # A user's application-default credentials file; the project comes from the environment,
    # as it does after `gcloud config set project nba-props-staging`.
    adc = tmp_path / "adc.json"
    adc.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "c",
                "client_secret": "s",
                "refresh_token": "r",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "nba-props-staging")
    with pytest.raises(EnvironmentMismatchError) as err:
        BigQueryWarehouse("nba-props-platform")
    assert err.value.actual == "nba-props-staging"
