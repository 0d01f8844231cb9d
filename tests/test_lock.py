"""One writer per warehouse: the lock's identity, holder, staleness, re-entrance and unlock.

The fault tests run real `runbook` processes against a copied params folder: a seed during a
backfill, a copy of local.yaml under another name racing a cleanup, a SIGKILLed holder, and
two processes racing for the BigQuery lock on bqemulator.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runbook_lib.cli import main
from runbook_lib.errors import LockHeldError, LockIdMismatchError
from runbook_lib.run import lock
from runbook_lib.run.params import load_params
from tests.conftest import RUNBOOK_PROCESS, SOURCE_PARAMS

RUNBOOK = RUNBOOK_PROCESS
DEAD_PID = 2**22 + 7  # above Linux's default pid_max: no such process


@pytest.fixture
def params_dir(tmp_params_dir):
    """A params folder with local.yaml and `copy.yaml` (the same file under another name)."""
    text = (tmp_params_dir / "local.yaml").read_text()
    (tmp_params_dir / "copy.yaml").write_text(text.replace("env: local", "env: copy"))
    shutil.copy(SOURCE_PARAMS / "staging.yaml", tmp_params_dir / "staging.yaml")
    return tmp_params_dir


@pytest.fixture
def seeded(params_dir, seeded_file, tmp_path):
    """The seeded warehouse copied where both params files point; return local's params."""
    (tmp_path / "warehouse").mkdir()
    shutil.copy(seeded_file, tmp_path / "warehouse" / seeded_file.name)
    return load_params("local")


def _lock_file(params) -> Path:
    from runbook_lib.warehouse import connect

    return lock.lock_file(connect(params).path)


def _forge(params, **changes) -> dict:
    """Write a lock as another holder would have left it; return its content."""
    path = _lock_file(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "lock_id": "abc123", "owner": "ops@elsewhere", "host": socket.gethostname(),
        "pid": DEAD_PID, "run_id": "other-run", "since": "2025-04-10T00:00:00+00:00",
        "expires": None, "warehouse": lock.warehouse_identity(params), **changes,
    }  # fmt: skip
    path.write_text(json.dumps(info))
    return info


# -- identity and the lock itself --------------------------------------------------------------


def test_the_identity_is_the_warehouse_file_not_the_environment_name(params_dir):
    """Two params files naming one DuckDB file share one lock; another file has its own."""
    local, copy = load_params("local"), load_params("copy")
    assert lock.warehouse_identity(local) == lock.warehouse_identity(copy)
    other = load_params("local", {"warehouse_dir": str(params_dir / "elsewhere")})
    assert lock.warehouse_identity(other) != lock.warehouse_identity(local)
    staging = load_params("staging")
    assert lock.warehouse_identity(staging) == "bigquery:nba-props-staging.nba_orchestration"


def test_a_second_holder_under_another_name_is_refused_with_everything_needed(params_dir):
    """The refusal names owner, host, run id, since, the lock id and the unlock command."""
    local, copy = load_params("local"), load_params("copy")
    with lock.warehouse_lock(local, "run-one") as info:
        assert set(info) >= {"owner", "host", "pid", "run_id", "since", "lock_id"}
        with pytest.raises(LockHeldError) as caught:
            lock.acquire(copy, "run-two")
    text = str(caught.value)
    for part in (info["owner"], info["host"], "run-one", info["since"], info["lock_id"]):
        assert part in text
    assert f"runbook unlock --env copy --lock-id {info['lock_id']}" in text
    assert lock.holder(local) is None  # released at the end of the block


def test_the_lock_is_reentrant_in_its_process_and_in_its_runs_kernels(params_dir, monkeypatch):
    """A nested block, or a process carrying the holder's run id, goes on without re-taking."""
    local = load_params("local")
    with lock.warehouse_lock(local, "run-one") as outer:
        with lock.warehouse_lock(load_params("copy"), "inner") as inner:
            assert inner == outer
        assert lock.holder(local) == outer  # the nested block did not release it
    forged = _forge(local, pid=os.getppid(), run_id="the-run")  # a live holder: our parent
    monkeypatch.setenv(lock.RUN_ID_ENV, "the-run")
    with lock.warehouse_lock(local, "the-run") as seen:
        assert seen == forged
    lock.check_writer(local, "the-run")
    assert lock.holder(local) == forged  # the kernel neither took nor released it
    monkeypatch.setenv(lock.RUN_ID_ENV, "another-run")
    with pytest.raises(LockHeldError):
        lock.check_writer(local, "another-run")


def test_a_stale_lock_is_refused_with_the_fix_named_and_broken_only_on_request(params_dir):
    local = load_params("local")
    _forge(local)
    with pytest.raises(LockHeldError) as caught:
        lock.acquire(local, "mine")
    assert caught.value.stale and "--break-stale-lock" in str(caught.value)
    info = lock.acquire(local, "mine", break_stale=True)
    assert lock.holder(local)["lock_id"] == info["lock_id"] != "abc123"


def test_another_hosts_lock_is_live_until_its_expiry(params_dir):
    """A pid cannot be checked on another host: only expiry makes that holder stale."""
    local = load_params("local")
    held = _forge(local, host="elsewhere")
    assert not lock.is_stale(held)
    with pytest.raises(LockHeldError) as caught:
        lock.acquire(local, "mine", break_stale=True)
    assert not caught.value.stale
    assert lock.is_stale(dict(held, expires="2025-04-10T12:00:00+00:00"))


def test_unlock_releases_another_hosts_lock_and_a_wrong_id_changes_nothing(params_dir, capsys):
    local = load_params("local")
    held = _forge(local, host="elsewhere")
    assert main(["unlock", "--env", "copy", "--lock-id", "wrong"]) == 2
    err = capsys.readouterr().err
    assert "abc123" in err and "ops@elsewhere" in err and "other-run" in err
    assert "Traceback" not in err and lock.holder(local) == held
    assert main(["unlock", "--env", "copy", "--lock-id", "abc123"]) == 0
    assert "Released lock abc123" in capsys.readouterr().out
    assert lock.holder(local) is None
    assert main(["unlock", "--env", "local", "--lock-id", "abc123"]) == 0  # nothing held


def test_unlock_refuses_a_holder_alive_on_this_host(params_dir):
    local = load_params("local")
    _forge(local, pid=os.getpid())
    with pytest.raises(Exception, match="still running") as caught:
        lock.unlock(local, "abc123")
    assert not isinstance(caught.value, LockIdMismatchError)
    assert lock.holder(local)["lock_id"] == "abc123"


# -- real processes ----------------------------------------------------------------------------


def _runbook(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*RUNBOOK, *args], capture_output=True, text=True, timeout=300, **kw)


def _wait_for(predicate, what: str, proc: subprocess.Popen | None = None) -> None:
    """Poll until `predicate()` (a guard against a hang, not a timing assertion)."""
    deadline = time.monotonic() + 120
    while not predicate():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process ended first ({proc.returncode})")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: never happened")
        time.sleep(0.005)


def _pcf_rows(params, since: str = "1900-01-01") -> int:
    from runbook_lib.warehouse import connect

    return connect(params).row_count(
        params.tables.pcf, "game_date >= $since", {"since": dt.date.fromisoformat(since)}
    )


def test_seed_during_a_backfill_is_refused_and_the_backfill_publishes(seeded):
    """The incident's pattern (seed wipes PCF under a running backfill, exit 0) cannot happen."""
    backfill = subprocess.Popen(
        [*RUNBOOK, "backfill", "--env", "local", "--start-date", "2022-11-01",
         "--end-date", "2023-03-31", "--no-resume", "--allow-partial-context"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lock_file = _lock_file(seeded)
    assert _pcf_rows(seeded, "2022-11-01") == 0
    try:
        _wait_for(lock_file.exists, "the backfill takes the lock", backfill)
        backfill.send_signal(signal.SIGSTOP)  # hold it there while the seed tries
        seed = _runbook("seed", "--env", "local")
        backfill.send_signal(signal.SIGCONT)
        out, err = backfill.communicate(timeout=300)
    finally:
        backfill.kill()
    assert seed.returncode in (1, 2) and "locked by" in seed.stderr
    assert "Traceback" not in seed.stderr and "cli-backfill" in seed.stderr
    assert backfill.returncode == 0, err
    assert _pcf_rows(seeded, "2022-11-01") > 10_000 and not lock_file.exists()


def _cleanup_waiting_at_its_prompt(env: str) -> tuple[subprocess.Popen, int]:
    """Start `runbook cleanup` on a terminal; return it once it holds the lock at its prompt."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*RUNBOOK, "cleanup", "--env", env], stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    seen = bytearray()

    def prompted() -> bool:
        seen.extend(os.read(leader, 65536))
        return b"type exactly" in seen

    _wait_for(prompted, "the cleanup asks for its confirmation", proc)
    return proc, leader


def test_a_copy_of_local_params_under_another_name_cannot_race_a_cleanup(seeded):
    """`--env copy` names the same DuckDB file: refused while `--env local` cleans it."""
    before = _pcf_rows(seeded)
    proc, leader = _cleanup_waiting_at_its_prompt("local")
    try:
        racer = _runbook("backfill", "--env", "copy", "--dates", "2023-02-25")
        cleaner = _runbook("cleanup", "--env", "copy", "--confirm", "anything")
    finally:
        proc.kill()
        proc.wait()
        os.close(leader)
    for refused in (racer, cleaner):
        assert refused.returncode == 1 and "locked by" in refused.stderr
        assert "cli-cleanup" in refused.stderr and "Traceback" not in refused.stderr
    assert _pcf_rows(seeded) == before


def test_a_sigkilled_holder_leaves_a_stale_lock_that_only_break_stale_lock_breaks(seeded):
    proc, leader = _cleanup_waiting_at_its_prompt("local")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.close(leader)
    assert _lock_file(seeded).exists()
    refused = _runbook("cleanup", "--env", "local", "--confirm", "anything")
    assert refused.returncode == 1 and "STALE" in refused.stderr
    assert "--break-stale-lock" in refused.stderr and "Traceback" not in refused.stderr
    broken = _runbook("backfill", "--env", "copy", "--dates", "2023-02-25", "--break-stale-lock")
    assert broken.returncode == 0, broken.stderr
    assert "breaking stale lock" in broken.stderr or not _lock_file(seeded).exists()
    assert not _lock_file(seeded).exists()


# -- BigQuery: the lock is a table in the orchestration dataset ----------------------------------

_BQ_HOLDER = textwrap.dedent(
    """
    import json, os, sys, time
    from runbook_lib.errors import LockHeldError
    from runbook_lib.run import lock
    from runbook_lib.run.params import load_params
    from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse
    from runbook_lib.warehouse.emulator import client_for

    endpoint, project, go, run_id, brk = sys.argv[1:6]
    params = load_params("staging", {"project": project})
    wh = BigQueryWarehouse(project, client=client_for(endpoint, project))
    print("READY", flush=True)
    while not os.path.exists(go):
        time.sleep(0.002)
    try:
        info = lock.acquire(params, run_id, break_stale=brk == "1", wh=wh)
    except LockHeldError as e:
        print("REFUSED", e, flush=True)
        sys.exit(3)
    print("WON", json.dumps(info), flush=True)
    sys.stdin.read()  # hold the lock until told to go
    lock.release(params, info, wh=wh)
    """
)


def _bq_holder(bq_emulator, project, go: Path, run_id: str, brk: bool = False):
    proc = subprocess.Popen(
        [sys.executable, "-c", _BQ_HOLDER, bq_emulator, project, str(go), run_id,
         "1" if brk else "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
    return proc


@pytest.fixture
def bq_project(bq_emulator):
    """A fresh emulator project, its staging params and a warehouse on it."""
    import uuid

    from runbook_lib.warehouse.bigquery_backend import BigQueryWarehouse
    from runbook_lib.warehouse.emulator import client_for

    project = f"emu-{uuid.uuid4().hex[:16]}"
    params = load_params("staging", {"project": project})
    return project, params, BigQueryWarehouse(project, client=client_for(bq_emulator, project))


def test_two_processes_racing_for_the_bigquery_lock_exactly_one_wins(
    bq_emulator, bq_project, tmp_path
):
    project, params, wh = bq_project
    go = tmp_path / "go"
    racers = [_bq_holder(bq_emulator, project, go, f"run-{i}") for i in range(2)]
    go.touch()
    try:
        first = [p.stdout.readline().split(" ", 1) for p in racers]
        won = [json.loads(rest) for word, rest in first if word == "WON"]
        refused = [rest for word, rest in first if word == "REFUSED"]
        assert len(won) == 1 and len(refused) == 1, first
        assert won[0]["lock_id"] in refused[0] and "locked by" in refused[0]
        assert lock.holder(params, wh)["lock_id"] == won[0]["lock_id"]
        with pytest.raises(LockHeldError):
            lock.acquire(params, "third", wh=wh)
    finally:
        for p in racers:
            p.communicate("", timeout=60)
    assert lock.holder(params, wh) is None  # the winner released it


def test_a_sigkilled_bigquery_holder_is_stale_and_broken_only_on_request(
    bq_emulator, bq_project, tmp_path
):
    project, params, wh = bq_project
    go = tmp_path / "go"
    go.touch()
    holder = _bq_holder(bq_emulator, project, go, "killed-run")
    assert holder.stdout.readline().startswith("WON")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with pytest.raises(LockHeldError) as caught:
        lock.acquire(params, "next", wh=wh)
    assert caught.value.stale and "--break-stale-lock" in str(caught.value)
    assert caught.value.run_id == "killed-run"
    taker = _bq_holder(bq_emulator, project, go, "next", brk=True)
    try:
        assert taker.stdout.readline().startswith("WON")
        assert lock.holder(params, wh)["run_id"] == "next"
    finally:
        taker.communicate("", timeout=60)


def test_a_bigquery_lock_past_its_expiry_is_stale(bq_project):
    _, params, wh = bq_project
    info = lock.acquire(params, "long-ago", wh=wh)
    assert info["expires"] and not lock.is_stale(info)
    assert lock.is_stale(dict(info, pid=os.getpid(), expires="2020-01-01T00:00:00+00:00"))
    lock.release(params, info, wh=wh)
    assert lock.holder(params, wh) is None
