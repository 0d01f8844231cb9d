"""Crashes during phase 02, with real processes: `runbook run` (or its kernel) killed by SIGKILL
at each step of the cleanup, then `runbook resume` and `runbook rollback` as separate processes.

The step to die at is named by RUNBOOK_FAULT (runbook_lib/faults.py): the cleanup SIGKILLs its
own kernel there, or with `@runner` the runner that started it. The kill is a real SIGKILL;
only its timing is chosen, because a few milliseconds between a backup and a delete cannot be
hit from outside on demand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook_lib import paths
from runbook_lib.run import manifest
from runbook_lib.run.forkserver import KERNEL_NAME, SERVER_NAME
from runbook_lib.run.params import load_params
from runbook_lib.statuses import PhaseStatus
from runbook_lib.warehouse import connect
from tests.test_cleanup_restore import content

RUNBOOK = Path(sys.executable).with_name("runbook")
PHASE = "02_data_cleanup"
UPCG_STALE, UTCG_STALE = 7972, 810  # the seeded league's stale rows on 2025-04-10


@pytest.fixture
def root(tmp_path, seeded_file):
    """A project root of its own: the real notebooks and params, a copy of the seeded league."""
    folder = tmp_path / "root"
    (folder / "outputs/local/warehouse").mkdir(parents=True)
    (folder / "notebooks").symlink_to(paths.NOTEBOOKS_DIR)
    (folder / "params").symlink_to(paths.PARAMS_DIR)
    shutil.copy(seeded_file, folder / "outputs/local/warehouse" / seeded_file.name)
    return folder


def _env(root: Path, fault: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env.update(RUNBOOK_ROOT=str(root), RUNBOOK_PARAMS_DIR=str(root / "params"))
    if fault:
        env["RUNBOOK_FAULT"] = fault
    return env


def runbook(root: Path, *args: str, fault: str = "") -> subprocess.CompletedProcess:
    """Run the `runbook` command in its own process against `root`."""
    return subprocess.run(
        [str(RUNBOOK), *args],
        env=_env(root, fault),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )


def wait_until_gone(fault: str, root: Path, limit_s: float = 60) -> None:
    """Wait until no process of this test (its fault and root in the environment) is left.

    The killed runner's kernel is an orphan that ipykernel ends within about a second; it holds
    the DuckDB file until then.
    """
    marks = (f"RUNBOOK_FAULT={fault}".encode(), f"RUNBOOK_ROOT={root}".encode())
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        alive = []
        for proc in Path("/proc").iterdir():
            try:
                env = (proc / "environ").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if all(m in env for m in marks):
                alive.append(proc.name)
        if not alive:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes {alive} of the killed run are still alive")


def tables_of(root: Path):
    params = load_params("local", {"warehouse_dir": str(root / "outputs/local/warehouse")})
    return connect(params), params.tables


def snapshot(root: Path) -> dict:
    """Return both upcoming tables' row count and content."""
    wh, tables = tables_of(root)
    return {t.short: (wh.row_count(t), content(wh, t)) for t in (tables.upcg, tables.utcg)}


def attempts_of(run_dir: Path) -> list[dict]:
    return [r for r in manifest.load(run_dir)["records"] if r["phase"] == PHASE]


# (crash point, what attempt 1 had deleted, its journal's open deletes, the log's first phrase)
STEPS = {
    "cleanup.before_backup": (0, [], "attempt 1 failed before deleting anything"),
    "cleanup.after_backup": (0, [], "attempt 1 backed up 2 table(s) and deleted nothing, failed"),
    "cleanup.after_delete": (
        UPCG_STALE + UTCG_STALE,
        [],
        "8,782 rows deleted by attempt 1, failed",
    ),
}


def _crash(root: Path, fault: str, target: str) -> Path:
    """Run phase 02 until it dies at `fault`; return the run dir."""
    spec = f"{fault}@runner" if target == "runner" else fault
    proc = runbook(root, "run", "--env", "local", "--phases", "02", "--run-id", "crash", fault=spec)
    wait_until_gone(spec, root)
    # A killed runner dies by SIGKILL; a killed kernel leaves the runner to record FAILED.
    assert proc.returncode == (-9 if target == "runner" else 1), proc.stderr[-2000:]
    run_dir = root / "outputs/local/crash"
    assert (run_dir / f"{PHASE}.ipynb").exists() and (run_dir / f"journal/{PHASE}.jsonl").exists()
    return run_dir


@pytest.mark.parametrize("target", ["kernel", "runner"])
@pytest.mark.parametrize("fault", sorted(STEPS))
def test_a_cleanup_killed_at_each_step_is_archived_resumed_and_rolled_back_exactly(
    root, fault, target
):
    """SIGKILL at each step of 02: both attempts archived, the first recorded with what it did,
    the log reports both, and rollback puts back exactly the rows deleted."""
    deleted, unknown, phrase = STEPS[fault]
    before = snapshot(root)
    run_dir = _crash(root, fault, target)

    resumed = runbook(root, "resume", str(run_dir), "--break-stale-lock")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    first, second = attempts_of(run_dir)
    status = PhaseStatus.INTERRUPTED if target == "runner" else PhaseStatus.FAILED
    phrase = phrase.replace("failed", status.lower())
    assert (first["attempt"], first["status"], second["attempt"], second["status"]) == (
        1,
        status,
        2,
        PhaseStatus.SUCCEEDED,
    )
    assert first["journal"]["rows_deleted"] == deleted and first["journal"]["unknown"] == unknown
    assert (f"deleted {deleted:,} rows" if deleted else "deleted nothing") in first["reason"]
    for name in (
        f"{PHASE}.ipynb",
        f"{PHASE}.attempt2.ipynb",
        f"journal/{PHASE}.jsonl",
        f"results/{PHASE}.json",
        f"results/{PHASE}.attempt2.json",
    ):
        assert (run_dir / name).exists(), name
    assert second["results"]["rows_deleted"] == UPCG_STALE + UTCG_STALE - deleted
    log = (run_dir / "deployment_log.md").read_text()
    assert phrase in log, log
    assert ("attempt 2 found nothing stale" in log) == bool(deleted)
    verified = runbook(root, "verify", str(run_dir))  # its own process: the run's warehouse
    assert verified.returncode == 0, verified.stderr[-2000:]

    rolled = runbook(root, "rollback", "--run", str(run_dir))
    assert rolled.returncode == 0, rolled.stderr[-3000:]
    assert snapshot(root) == before
    assert runbook(root, "verify", str(run_dir)).returncode == 0


def test_a_kernel_killed_between_delete_and_journal_is_restored_all_the_same(root):
    """The delete committed but its outcome never reached the journal: the record says so,
    and rollback still puts back exactly the missing rows."""
    before = snapshot(root)
    run_dir = _crash(root, "cleanup.deleted_unjournaled", "kernel")
    assert runbook(root, "resume", str(run_dir)).returncode == 0
    first, second = attempts_of(run_dir)
    upcg = str(tables_of(root)[1].upcg)
    assert first["journal"]["unknown"] == [upcg] and "not journaled" in first["reason"]
    assert second["results"]["rows_deleted"] == UTCG_STALE  # UPCG's delete had committed
    assert runbook(root, "rollback", "--run", str(run_dir)).returncode == 0
    assert snapshot(root) == before


def test_rollback_with_a_backup_missing_changes_nothing_and_names_it(root):
    """One of two backups gone: exit 1 naming it, no table changed; back in place, it works."""
    before = snapshot(root)
    run_dir = _crash(root, "cleanup.after_delete", "runner")
    assert runbook(root, "resume", str(run_dir), "--break-stale-lock").returncode == 0
    wh, tables = tables_of(root)
    gone = next(
        b for b in attempts_of(run_dir)[0]["journal"]["backups"] if b["table"] == str(tables.utcg)
    )
    backup = tables.utcg.with_table(gone["backup"].rsplit(".", 1)[-1])
    aside = tables.utcg.with_table("aside")
    wh.copy_table(backup, aside)
    wh.drop_table(backup)
    after_cleanup = snapshot(root)

    refused = runbook(root, "rollback", "--run", str(run_dir))
    assert refused.returncode == 1 and gone["backup"] in refused.stderr, refused.stderr[-2000:]
    assert "is missing" in refused.stderr and snapshot(root) == after_cleanup

    wh.copy_table(aside, backup)
    assert runbook(root, "rollback", "--run", str(run_dir)).returncode == 0
    assert snapshot(root) == before


def kernels_of(pid: int) -> list[int]:
    """Return the pids of the kernels `pid` started: launched ones (its ipykernel children) and
    forked ones (named rbk-kernel, children of its fork server; forkserver.py)."""
    return _descendants(pid, lambda cmd, comm: b"ipykernel" in cmd or comm == KERNEL_NAME)


def forkservers_of(pid: int) -> list[int]:
    """Return the pids of the fork servers `pid` started (named rbk-forkserver)."""
    return _descendants(pid, lambda cmd, comm: comm == SERVER_NAME)


def _descendants(pid: int, match) -> list[int]:
    procs = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (proc / "cmdline").read_bytes()
            comm = (proc / "comm").read_text().strip()
        except (OSError, IndexError):
            continue
        procs[int(proc.name)] = (int(stat[1]), match(cmd, comm))

    def descends(p: int) -> bool:
        while p in procs and p != pid:
            p = procs[p][0]
        return p == pid

    return [p for p, (ppid, found) in procs.items() if found and p != pid and descends(ppid)]


def test_a_run_stopped_by_sigterm_mid_phase_releases_its_lock_and_resumes(root):
    """SIGTERM (a CI timeout, systemd, `kill`) unwinds like Ctrl-C: the phase's kernel is shut
    down, the warehouse lock released, and `runbook resume` completes the run."""
    from runbook_lib.run.lock import lock_file

    proc = subprocess.Popen(
        [str(RUNBOOK), "run", "--env", "local", "--phases", "02", "--run-id", "term"],
        env=_env(root, "sigterm"), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    # Wait for the phase itself (papermill saves its notebook as it starts executing it), not
    # only for its kernel.
    run_dir = root / "outputs/local/term"
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("02_*.ipynb")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kernels_of(proc.pid), "the phase's kernel never started"
    proc.terminate()  # SIGTERM to the runner alone, while its phase runs
    _, err = proc.communicate(timeout=120)
    wait_until_gone("sigterm", root)
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted by SIGTERM" in err and "lock released" in err
    warehouse = root / "outputs/local/warehouse"
    assert not any(lock_file(f).exists() for f in warehouse.glob("*.duckdb"))
    assert runbook(root, "verify", str(run_dir)).returncode == 1  # INCOMPLETE: 02 has no record
    resumed = runbook(root, "resume", str(run_dir))  # no --break-stale-lock: none was left
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert runbook(root, "verify", str(run_dir)).returncode == 0
