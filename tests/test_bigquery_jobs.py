"""BigQuery jobs that fail clearly: a 409 says what exists, load and copy errors name their job."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from runbook_lib.errors import JobExistsError, TableExistsError, WarehouseError
from runbook_lib.warehouse import bigquery_backend
from runbook_lib.warehouse.bigquery_backend import _translated
from runbook_lib.warehouse.ids import TableId

TABLE = TableId("nba-props-platform", "nba_analytics", "upcoming_player_game_context")


def test_a_409_of_a_retried_job_is_not_table_exists():
    """bqemulator accepts a job id twice, so BigQuery's 409 for a job is raised here by hand."""
    with pytest.raises(JobExistsError) as caught, _translated(TABLE):
        raise gexc.Conflict("Already Exists: Job nba-props-platform:US.runbook_job_1")
    assert caught.value.job == "nba-props-platform:US.runbook_job_1"
    assert "not a table" in str(caught.value)
    assert not isinstance(caught.value, TableExistsError)


def test_a_409_of_a_table_still_says_table_exists():
    with pytest.raises(TableExistsError), _translated(TABLE):
        raise gexc.Conflict("Already Exists: Table nba-props-platform:nba_analytics.x")


class _FailingJob:
    """A load job whose server answers 400: bqemulator accepts what BigQuery would refuse."""

    project, location, job_id = "nba-props-platform", "US", "runbook_load_7"

    def result(self, timeout=None):
        self.timeout = timeout
        raise gexc.BadRequest("Provided Schema does not match Table")


def test_a_failed_load_or_copy_job_names_its_job_and_waits_at_most_the_timeout():
    job = _FailingJob()
    with pytest.raises(WarehouseError, match=r"job nba-props-platform:US\.runbook_load_7: "):
        with _translated(TABLE):
            bigquery_backend._wait(job)
    assert job.timeout == bigquery_backend.JOB_TIMEOUT_S


def test_every_query_carries_the_job_timeout(bq_wh, monkeypatch):
    seen = {}
    original = bq_wh.client.query_and_wait

    def spy(sql, **kwargs):
        seen.update(kwargs)
        return original(sql, **kwargs)

    monkeypatch.setattr(bq_wh.client, "query_and_wait", spy)
    bq_wh.query("SELECT 1 AS one")
    assert seen["wait_timeout"] == bigquery_backend.JOB_TIMEOUT_S
    assert int(seen["job_config"].job_timeout_ms) == bigquery_backend.JOB_TIMEOUT_S * 1000
