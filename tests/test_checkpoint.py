"""The backfill checkpoint file: atomic, keeps error text, retries failures, refuses bad files."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from runbook_lib.errors import CheckpointError
from runbook_lib.platform.checkpoint import Checkpoint, checkpoint_path

D1, D2, D3 = (dt.date(2023, 2, d) for d in (23, 24, 25))


@pytest.fixture
def cp(tmp_path):
    return Checkpoint(checkpoint_path(tmp_path, D1, D3), D1, D3)


@pytest.mark.safeguard
def test_failed_date_keeps_its_error_text_and_counts_attempts(cp):
    cp.record(failures={D2: "Coverage validation failed: 1/187 players (0.5%)"})
    cp.record(failures={D2: "Coverage validation failed: 68/175 players (38.9%)"})
    entry = json.loads(cp.path.read_text())["failed_dates"][str(D2)]
    assert entry["error"] == "Coverage validation failed: 68/175 players (38.9%)"
    assert entry["attempts"] == 2
    assert cp.summary()["failed_dates"] == {str(D2): entry["error"]}


@pytest.mark.safeguard
def test_pending_retries_failed_dates_before_the_last_success(cp):
    cp.record(successes={D3: 180}, failures={D1: "boom"}, skips={D2: "bootstrap"})
    assert cp.pending([D1, D2, D3]) == [D1, D2]
    assert cp.summary()["last_successful_date"] == str(D3)


def test_a_retried_success_leaves_the_failed_list(cp):
    cp.record(failures={D1: "boom"})
    cp.record(successes={D1: 187})
    state = cp.load()
    assert str(D1) in state["successful_dates"] and state["failed_dates"] == {}


def test_reset_starts_fresh(cp):
    cp.record(successes={D1: 187})
    cp.reset()
    assert not cp.path.exists()
    assert cp.pending([D1]) == [D1]


@pytest.mark.safeguard
def test_writes_are_atomic_and_leave_no_temporary_file(cp):
    cp.record(successes={D1: 187})
    assert not cp.path.with_name(cp.path.name + ".tmp").exists()
    assert json.loads(cp.path.read_text())["successful_dates"][str(D1)]["players"] == 187


def test_concurrent_records_from_threads_are_all_kept(tmp_path):
    cp = Checkpoint(checkpoint_path(tmp_path, D1, D3), D1, D3)
    days = [D1 + dt.timedelta(days=i) for i in range(40)]
    threads = [threading.Thread(target=cp.record, kwargs={"successes": {d: 1}}) for d in days]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cp.load()["successful_dates"]) == 40


@pytest.mark.parametrize(
    "content,problem",
    [
        ("{not json", "not readable JSON"),
        ("[]", "not a JSON object"),
        ('{"version": 1}', "missing keys"),
    ],
)
def test_a_corrupt_file_is_a_clear_error_not_a_silent_reset(cp, content, problem):
    cp.path.parent.mkdir(parents=True, exist_ok=True)
    cp.path.write_text(content)
    with pytest.raises(CheckpointError, match=problem) as err:
        cp.load()
    assert "--no-resume" in str(err.value)
    assert cp.path.read_text() == content


def test_a_date_both_successful_and_failed_is_refused(cp):
    cp.record(successes={D1: 187})
    state = json.loads(cp.path.read_text())
    state["failed_dates"][str(D1)] = {"error": "x", "attempts": 1, "at": "now"}
    cp.path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="both successful and failed"):
        cp.pending([D1])


def test_a_date_list_gets_its_own_file(tmp_path):
    a = checkpoint_path(tmp_path, D1, D3, [D1, D3])
    b = checkpoint_path(tmp_path, D1, D3, [D1, D2, D3])
    assert a != b != checkpoint_path(tmp_path, D1, D3)


def test_a_skipped_date_that_later_succeeds_leaves_the_skipped_list(cp):
    cp.record(skips={D1: "no expected players"})
    state = cp.record(successes={D1: 12})
    assert str(D1) not in state["skipped_dates"] and cp.summary()["skipped"] == 0
