"""Statuses are Enums whose stored form is exactly the string each status always was."""

import json

import pytest

from runbook_lib.statuses import CheckStatus, DateStatus, PhaseStatus, RunVerdict, Verification


@pytest.mark.parametrize("kind", [DateStatus, PhaseStatus, Verification, CheckStatus, RunVerdict])
def test_every_status_should_store_and_print_as_its_own_name(kind):
    for status in kind:
        assert status.value == status.name
        assert json.dumps({"status": status}) == json.dumps({"status": status.name})
        assert f"{status}" == str(status) == status.name and status == status.name


def test_a_record_read_back_from_json_should_compare_equal_to_the_enum():
    record = json.loads(json.dumps({"status": PhaseStatus.SUCCEEDED}))
    assert (
        record["status"] == PhaseStatus.SUCCEEDED
        and PhaseStatus(record["status"]) is PhaseStatus.SUCCEEDED
    )
