"""Automated checks of phases 00 and 01: the tree, the warehouse rights, the code that will run.

The seed runbook checks these by eye (`git status`, `grep -A5 _validate_coverage`,
`py_compile`); here each is a function whose result a phase records.
"""

from __future__ import annotations

import compileall
import importlib
import importlib.util
import inspect
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import weakref
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from runbook_lib import paths
from runbook_lib.platform.schema import (
    ALL_TABLES,
    BACKFILL_METADATA,
    CLEANUP_OPERATIONS,
    PCF,
    PCF_STAGING,
    UPCG,
    UTCG,
    Tables,
)
from runbook_lib.run.display import facts_table
from runbook_lib.run.forkserver import ForkClient, ForkRefused
from runbook_lib.warehouse.base import Warehouse, one_connection


@dataclass(frozen=True)
class GitState:
    """The working tree as `git status` and `git rev-parse` see it."""

    is_repo: bool
    branch: str
    head: str
    dirty: tuple[str, ...]

    @property
    def clean(self) -> bool:
        """Return whether the tree has no uncommitted change."""
        return self.is_repo and not self.dirty

    def facts(self) -> list[tuple[str, str]]:
        """Return the state as (label, value) rows: branch, commit, tree and its changed files."""
        if not self.is_repo:
            return [("repository", "none: the project is not a git checkout")]
        tree = "clean" if not self.dirty else f"{len(self.dirty)} uncommitted file(s)"
        rows = [("branch", self.branch), ("head commit", self.head), ("working tree", tree)]
        return rows + ([("uncommitted", "\n".join(self.dirty))] if self.dirty else [])

    def _repr_html_(self) -> str:
        return facts_table(self.facts(), "git state")._repr_html_()

    def __str__(self) -> str:
        return repr(facts_table(self.facts(), "git state"))


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def git_state(root: Path = paths.SOURCE_ROOT) -> GitState:
    """Return the branch, head commit and uncommitted files of the project's tree."""
    head = _git(root, "rev-parse", "HEAD")
    if head.returncode != 0:
        return GitState(False, "", "", ())
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    dirty = tuple(line for line in _git(root, "status", "--porcelain").stdout.splitlines() if line)
    return GitState(True, branch, head.stdout.strip(), dirty)


def clean_tree_required(is_local: bool, override: bool | None) -> bool:
    """Return whether the tree must be clean: the override if given, else everywhere but local."""
    return (not is_local) if override is None else bool(override)


def git_diff_stat(target: str, root: Path = paths.SOURCE_ROOT) -> str:
    """Return `git diff --stat` of the working tree against `target`: what would be deployed.

    The working tree, not HEAD: uncommitted changes are part of the code that would run, and
    phase 00 refuses them outside local.
    """
    result = _git(root, "diff", "--stat", target)
    if result.returncode != 0:
        return f"(no diff: {result.stderr.strip() or 'target not found'})"
    return result.stdout.strip() or f"(the working tree is {target}: nothing to deploy beyond it)"


def merge_fast_forward(branch: str, root: Path = paths.SOURCE_ROOT) -> dict:
    """Fast-forward the checkout to `branch` when asked; never a merge commit, never a conflict.

    An empty `branch` means no merge was requested (the seed runbook's reviewed PR merges);
    anything but a clean fast-forward is refused and reported, and the tree is left as it was.
    """
    if not branch:
        return {"requested": False, "ok": True, "detail": "no merge requested: a reviewed PR merges"}
    if not git_state(root).clean:
        return {"requested": True, "ok": False, "detail": "refused: the working tree has uncommitted changes"}
    result = _git(root, "merge", "--ff-only", branch)
    detail = (result.stdout or result.stderr).strip().splitlines()
    return {"requested": True, "ok": result.returncode == 0,
            "detail": detail[-1] if detail else f"git merge --ff-only {branch}: exit {result.returncode}"}


@one_connection
def probe_access(wh: Warehouse, tables: Tables) -> pd.DataFrame:
    """Check each dataset is reachable, in the params' location, and writable; each table exists.

    The write probe creates and drops a scratch table in the orchestration dataset: the
    runbook's own writes (metadata, audit rows, backups) need exactly that right.
    """
    rows = []
    for dataset in sorted(tables.datasets.values()):
        # One call tells both: None when missing, its location (BigQuery) or "" otherwise.
        found = wh.dataset_location(dataset)
        problem = wh.location_problem(dataset, found)
        kind = f"dataset in {found}" if found else "dataset"
        rows.append({"object": dataset, "kind": problem or kind, "ok": found is not None and not problem})
    for schema in ALL_TABLES:
        table = tables.id(schema)
        rows.append({"object": table.short, "kind": "table", "ok": wh.table_exists(table)})
    probe = tables.id(CLEANUP_OPERATIONS).with_table(f"_runbook_probe_{uuid.uuid4().hex[:8]}")
    try:
        wh.create_table(probe, CLEANUP_OPERATIONS)
        wh.drop_table(probe)
        writable = True
    except Exception as e:  # noqa: BLE001 - any refusal means the right is missing
        writable = False
        rows.append({"object": probe.short, "kind": f"write refused: {e}", "ok": False})
    rows.append({"object": tables.datasets["orchestration"], "kind": "write (create+drop)", "ok": writable})
    return pd.DataFrame(rows)


# What the run does to each table: the tables it writes need the three, the others the first two.
READ = ("bigquery.tables.get", "bigquery.tables.getData")
WRITE = (*READ, "bigquery.tables.updateData")
WRITTEN = (UPCG, UTCG, PCF, PCF_STAGING, BACKFILL_METADATA, CLEANUP_OPERATIONS)


@one_connection
def probe_permissions(wh: Warehouse, tables: Tables) -> pd.DataFrame:
    """List each permission the run needs and whether the caller holds it (None: not known).

    Jobs need bigquery.jobs.create on the project; each table needs get and getData, and the
    tables the run writes updateData too (tables.testIamPermissions, which takes the grants on
    the dataset and the project into account). Creating backups is the write probe's part.
    """
    jobs = wh.can_create_jobs()
    rows = [_permission_row(wh.project, "bigquery.jobs.create", jobs)]
    for schema in ALL_TABLES:
        needed = list(WRITE if schema in WRITTEN else READ)
        granted = wh.granted_permissions(tables.id(schema), needed)
        for permission in needed:
            held = granted if isinstance(granted, str) else permission in granted
            rows.append(_permission_row(tables.id(schema).short, permission, held))
    return pd.DataFrame(rows)


def _permission_row(resource: str, permission: str, held: bool | str) -> dict:
    if isinstance(held, str):
        return {"resource": resource, "permission": permission, "granted": None, "note": held}
    return {"resource": resource, "permission": permission, "granted": held,
            "note": "" if held else "MISSING"}


class PytestRun:
    """A pytest subprocess started now and collected later: the phase works while it runs.

    Its output goes to files, not pipes, so a long report never blocks it while nobody reads.
    If the run is abandoned (the kernel dies or the object is dropped uncollected), the
    process is killed with it.
    """

    def __init__(self, test_paths: list[str], root: Path):
        # The safeguard tests use no installed pytest plugin, and loading them all (nbval with
        # nbformat and jsonschema, bqemulator's fixtures, coverage, xdist, ...) cost more
        # start-up than the tests themselves; none is loaded. The options pyproject.toml sets
        # for those plugins are then unknown: that config warning is silenced.
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        # --color=no: a kernel may inherit FORCE_COLOR/PY_COLORS, and ANSI codes reached the
        # manifest.
        self.command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--color=no",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::pytest.PytestConfigWarning",
            # The tests run in a worker per core, forked after the collection (pytest_fork.py).
            "-p",
            "runbook_lib.run.pytest_fork",
            f"--fork-workers={_cores()}",
            *test_paths,
        ]
        # The tests' temporary files in a folder of this run's own (on /dev/shm where there is
        # one: a DuckDB commit's fsync costs nothing in memory), removed when it is collected.
        # pytest's default, numbered folders under /tmp shared with every other pytest run,
        # made this run delete the oldest of them, another run's hundreds of files.
        self._tmp = tempfile.mkdtemp(prefix="runbook-safeguard-tests-", dir=scratch_dir())
        basetemp = f"--basetemp={Path(self._tmp) / 'tmp'}"
        self._output = Path(self._tmp) / "pytest"  # .out, .err (and .exit when forked)
        self._proc, self.started = _start([*self.command, basetemp], root, env, self._output)
        self._stop = weakref.finalize(self, _stop, self._proc, self._tmp)
        self._result: dict | None = None

    def result(self) -> dict:
        """Wait for the tests; return passed/failed/skipped counts, exit code and summary line."""
        if self._result is None:
            code = self._proc.wait()
            out, err = (_read(Path(f"{self._output}.{s}")) for s in ("out", "err"))
            self._stop()
            self._result = {**_summary(code, out, err), "started": self.started}
        return self._result

    def __repr__(self) -> str:
        state = "running" if self._proc.poll() is None else f"exited {self._proc.returncode}"
        return f"pytest {' '.join(self.command[3:])} (pid {self._proc.pid}, {state})"


def _cores() -> int:
    """Return how many cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _start(command: list[str], root: Path, env: dict, output: Path) -> tuple[object, str]:
    """Start `command` (`python -m pytest ...`): forked from the run's fork server when this is
    one of its kernels and it accepts (the imports are loaded; forkserver.py), else launched.
    Return the process and how it started."""
    forks = ForkClient.from_env()
    how = "launched"
    if forks is not None:
        try:
            process = forks.run_module(
                "pytest", command[3:], root, env, output,
                runtime_env=("PYTEST_DISABLE_PLUGIN_AUTOLOAD",),
            )
            return process, "forked"
        except ForkRefused as e:
            how = f"launched (fork refused: {e})"
    with open(f"{output}.out", "wb") as out, open(f"{output}.err", "wb") as err:
        return subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=err), how


def _summary(code: int, out: str, err: str) -> dict:
    tail = out.strip().splitlines()[-1:] or [err.strip()]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|error|skipped)", tail[0])}
    return {
        "passed": counts.get("passed", 0),
        "failed": counts.get("failed", 0) + counts.get("error", 0),
        "skipped": counts.get("skipped", 0),
        "exit_code": code,
        "summary": tail[0],
    }


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except FileNotFoundError:  # a forked run killed before it opened its output
        return ""


def scratch_dir() -> str | None:
    """Return where to put scratch files nothing keeps: /dev/shm when it is a writable folder
    (Linux; in memory, so a DuckDB commit's fsync costs nothing), else None (the default)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _stop(proc, tmp: str) -> None:
    """Kill `proc` if still running (a no-op once it has exited), remove its temporary
    folder with its output files."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def start_tests(test_paths: list[str], root: Path = paths.SOURCE_ROOT) -> PytestRun:
    """Start pytest on `test_paths` in a subprocess of the tree at `root` as it is now.

    Start it only once the tree is the code to test (after phase 01's merge): the process
    imports that code when it starts. `.result()` waits and returns what `run_tests` does.
    """
    return PytestRun(test_paths, root)


def run_tests(test_paths: list[str], root: Path = paths.SOURCE_ROOT) -> dict:
    """Run pytest on `test_paths` in a subprocess; return passed/failed counts and the tail."""
    return start_tests(test_paths, root).result()


def byte_compile(package: str = "runbook_lib") -> int:
    """Byte-compile every module of `package`; return how many files compiled (raise on error).

    A module whose .pyc was compiled from its source as it is now (the .pyc's header names the
    source's modification time and size, the test the import makes before it runs a .pyc) is
    not compiled again: it compiled, and that .pyc is what will run. Compiling all ~100 modules
    again took 0.3-0.6 s of phase 01 on 2 cores, beside its safeguard tests.
    """
    folder = Path(importlib.import_module(package).__file__).parent
    files = sorted(folder.rglob("*.py"))
    stale = [f for f in files if not _compiled_as_is(f)]
    with redirect_stdout(io.StringIO()):
        failed = [str(f) for f in stale if not compileall.compile_file(str(f), quiet=2, force=True)]
    if failed:
        raise SyntaxError(f"these files do not compile: {failed}")
    return len(files)


def _compiled_as_is(source: Path) -> bool:
    """Return whether `source`'s .pyc (of this interpreter) was compiled from it as it is now:
    the header the import validates (magic number, timestamp flags, source mtime and size)."""
    stat = source.stat()
    expected = (
        importlib.util.MAGIC_NUMBER
        + (0).to_bytes(4, "little")  # flags 0: validated by timestamp, not by hash
        + (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    )
    try:
        with open(importlib.util.cache_from_source(str(source)), "rb") as pyc:
            return pyc.read(16) == expected
    except OSError:  # no .pyc yet (or not readable): compile it
        return False


def has_parameters(func, *names: str) -> bool:
    """Return whether `func` accepts every keyword in `names`."""
    return set(names) <= set(inspect.signature(func).parameters)


SIGNOFF_ITEMS = (
    "All changes reviewed by team",
    "Security review completed (if required)",
    "PR approved and merged to main",
    "BigQuery dataEditor role confirmed",
    "Cloud Function deployment permissions confirmed",
    "Production database access confirmed",
)
# Phase 06's sign-offs; the first is the seventh success criterion (post_deployment.success_criteria).
TEAM_TRAINED = "Team trained on new features"
POST_DEPLOYMENT_SIGNOFFS = (TEAM_TRAINED, "Deployment verified")


def signed_by(signed: list[dict], item: str) -> str | None:
    """Return the name that signed `item` in `Approvals.require`'s entries, None when nobody did."""
    return next((entry["name"] for entry in signed if entry["item"] == item), None)


def default_approvals(
    is_local: bool, given: dict | list | None, user: str | None = None,
    items: tuple[str, ...] = SIGNOFF_ITEMS,
) -> dict:
    """Return the sign-offs to use: the given ones, or on `local` an automatic local sign-off.

    The embedded warehouse is a demo with nobody to ask, so a local run signs every item in the
    name of the OS user, marked as automatic; every other environment needs real names.
    """
    if given or not is_local:
        return given or {}
    import getpass

    who = f"{user or getpass.getuser()} (local run, signed automatically)"
    return {item: who for item in items}
