"""Chain the phase notebooks into one archived, verifiable run (papermill's Python API).

One process, a fresh kernel per phase (started while the previous phase runs), each executed
notebook saved under `outputs/<env>/<run_id>/` with a hash-chained manifest record. A phase
counts as SUCCEEDED only when every code cell ran and `phase.finish()` wrote its results file
with status SUCCEEDED (verdict.py): papermill saves a dead-kernel or timed-out notebook with no
error banner and treats `sys.exit(0)` as success, so its own verdict is not enough. Which
notebooks run with which parameters is phases.py; what the run leaves on disk is archive.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runbook_lib import paths, secrets
from runbook_lib.clock import new_run_id, now_iso
from runbook_lib.errors import (
    EnvironmentMismatchError,
    ParamsError,
    PhaseFailedError,
    RunbookError,
)
from runbook_lib.run import attempts, lock, manifest
from runbook_lib.run.archive import (
    attempt_file,
    finalise,
    next_attempt,
    scrub_phase,
    skipped_record,
)
from runbook_lib.run.interact import HEADLESS_ENV
from runbook_lib.run.notebook_html import Fragments
from runbook_lib.run.params import Params, load_params
from runbook_lib.run.phase import ATTEMPT_ENV, OVERRIDES_ENV, read_results
from runbook_lib.run.phases import (
    check_parameters,
    check_phase_keys,
    phase_notebooks,
    phase_parameters,
    require_preflight,
    select_phases,
)
from runbook_lib.run.verdict import failure_reason
from runbook_lib.statuses import PhaseStatus

if TYPE_CHECKING:
    from runbook_lib.run import engine

__all__ = [
    "ROLLBACK",
    "RunResult",
    "check_credentials",
    "phase_notebooks",
    "resume",
    "rollback",
    "run",
    "verify",
]

ROLLBACK = "90_rollback"
# "0" launches every phase kernel from a new interpreter instead of forking it (forkserver.py).
FORK_KERNELS_ENV = "RUNBOOK_FORK_KERNELS"
_BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery"
Progress = Callable[[dict], None]


@dataclass
class RunResult:
    """What a run did: where it is archived and each phase's latest record."""

    run_id: str
    run_dir: Path
    env: str
    records: list[dict] = field(default_factory=list)
    failed: dict | None = None

    @property
    def ok(self) -> bool:
        """Return whether no phase failed."""
        return self.failed is None

    @property
    def status(self) -> str:
        """Return SUCCEEDED or FAILED."""
        return PhaseStatus.SUCCEEDED if self.ok else PhaseStatus.FAILED


@dataclass
class _Ctx:
    run_dir: Path
    run_id: str
    params: Params
    overrides: dict
    notebooks_dir: Path
    cell_timeout: int
    progress: Progress
    kernel_env: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)  # the header's code, promotion gate, previous run
    forks: object = None  # the fork server the kernels come from (forkserver.ForkServer), if any

    def parameters(self, name: str, extra: dict | None = None) -> dict:
        """Return the parameters phase `name` runs with in this run."""
        return phase_parameters(self.params, self.run_dir, name, extra)


def _make_ctx(env, run_dir, run_id, overrides, notebooks_dir, cell_timeout, progress) -> _Ctx:
    params = load_params(env, overrides or None)
    ctx = _Ctx(
        run_dir,
        run_id,
        params,
        dict(overrides or {}),
        Path(notebooks_dir),
        cell_timeout,
        progress or (lambda event: None),
    )
    ctx.kernel_env = {
        OVERRIDES_ENV: json.dumps(ctx.overrides),
        HEADLESS_ENV: "1",
        "RUNBOOK_PARAMS_DIR": str(paths.PARAMS_DIR),
        lock.RUN_ID_ENV: run_id,  # the kernel's writes recognise the run's lock as their own
        "MPLBACKEND": "",
    }
    return ctx


def _stored_ctx(run_dir: Path, header: dict, overrides, notebooks_dir, progress) -> _Ctx:
    """Rebuild the context of an archived run from its manifest header."""
    merged = _restore_overrides(header["overrides"], overrides or {})
    timeout = header.get("cell_timeout", 600)
    return _make_ctx(
        header["env"], run_dir, header["run_id"], merged, notebooks_dir, timeout, progress
    )


def run(
    env: str,
    *,
    phases: list[str] | None = None,
    run_id: str | None = None,
    out_root: Path | None = None,
    overrides: dict | None = None,
    progress: Progress | None = None,
    notebooks_dir: Path | None = None,
    cell_timeout: int = 600,
    break_stale_lock: bool = False,
) -> RunResult:
    """Run the phases of `env` in order into a new run dir; raise PhaseFailedError on failure."""
    ctx, available, selected = new_run(
        env, phases, run_id, out_root, overrides, progress, notebooks_dir, cell_timeout
    )
    # The kernels' fork server loads their imports (~2.5 s) while the run is checked, locked
    # and created; any refusal stops it.
    with kernel_forks(ctx, selected):
        check_run(ctx, selected)
        with run_lock(ctx, break_stale_lock):
            create_run_dir(ctx, available, selected)
            return _chain(ctx, selected)


def prepare_run(
    env, phases, run_id, out_root, overrides, progress, notebooks_dir, cell_timeout=600
) -> tuple[_Ctx, list[Path], list[Path]]:
    """Check a new run before any side effect; return its context, all and selected notebooks."""
    ctx, available, selected = new_run(
        env, phases, run_id, out_root, overrides, progress, notebooks_dir, cell_timeout
    )
    check_run(ctx, selected)
    return ctx, available, selected


def new_run(
    env, phases, run_id, out_root, overrides, progress, notebooks_dir, cell_timeout=600
) -> tuple[_Ctx, list[Path], list[Path]]:
    """Return a new run's context (its params loaded), all and selected notebooks; no side effect."""
    notebooks_dir = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    available = phase_notebooks(notebooks_dir)
    if not available:
        raise RunbookError(f"no phase notebooks in {notebooks_dir} (to fix this, check the path)")
    selected = select_phases(available, phases)
    run_id = run_id or new_run_id()
    run_dir = Path(out_root or paths.OUTPUTS_DIR) / env / run_id
    ctx = _make_ctx(env, run_dir, run_id, overrides, notebooks_dir, cell_timeout, progress)
    return ctx, available, selected


def check_run(ctx: _Ctx, selected: list[Path]) -> None:
    """Refuse a new run before any side effect: pre-flight, credentials, gate, parameters."""
    require_preflight(ctx.params, [nb.stem for nb in selected], set(), "--phases")
    check_credentials(ctx.params)
    ctx.facts = _deployment_facts(ctx.params, ctx.run_dir.parent)
    check_phase_keys(ctx.params, ctx.notebooks_dir)
    for nb in selected:  # strict parameters before any side effect
        check_parameters(nb, ctx.parameters(nb.stem))


def _deployment_facts(params: Params, env_dir: Path) -> dict:
    """Return the code this run deploys, its promotion gate (raising when shut), the previous run."""
    from runbook_lib.run import promotion
    from runbook_lib.run.checks import git_state

    git = git_state(paths.SOURCE_ROOT)  # read at call time: tests point it at a repo of their own
    code = {"commit": git.head or None, "branch": git.branch, "dirty": len(git.dirty)}
    return {
        "code": code,
        "promotion": promotion.gate(params, env_dir.parent, git.head),
        "previous_deployment": promotion.previous_deployment(env_dir, git.head),
        "contacts": params.contacts.named(),
    }


def create_run_dir(ctx: _Ctx, available: list[Path], selected: list[Path]) -> None:
    """Create the run dir and its manifest; record the phases not selected as SKIPPED."""
    ctx.run_dir.mkdir(parents=True, exist_ok=False)
    manifest.create(ctx.run_dir, _header(ctx, ctx.params.env, selected))
    for nb in available:
        if nb not in selected:
            manifest.append(ctx.run_dir, skipped_record(nb.stem, "not selected for this run"))


def run_lock(ctx: _Ctx, break_stale: bool = False):
    """Return the context manager holding the lock a run writes under."""
    return lock.warehouse_lock(ctx.params, ctx.run_id, break_stale)


def check_credentials(params: Params) -> None:
    """Refuse a BigQuery run whose Google credentials are missing or bound to another project.

    Without this a staging or prod run creates its archive and lock and only fails inside
    phase 00, when the first query asks for credentials.
    """
    if params.backend != "bigquery":
        return
    if params.engine == "emulator":  # anonymous credentials; its server must answer
        from runbook_lib.warehouse import emulator_server

        emulator_server.require(params.bigquery.endpoint, params.project, params.env)
        return
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        _, cred_project = google.auth.default(scopes=[_BIGQUERY_SCOPE])
    except DefaultCredentialsError as e:
        raise RunbookError(
            f"no Google credentials found for {params.env} (project {params.project}); nothing "
            f"was written: {e} (to fix this, run `gcloud auth application-default login` "
            f"with an account that can use {params.project}, or set "
            f"GOOGLE_APPLICATION_CREDENTIALS to the path of a service-account key file)"
        ) from None
    # Credentials naming another project mean the shell points at another environment; with
    # none named, the client uses the params project.
    if cred_project and cred_project != params.project:
        raise EnvironmentMismatchError(params.project, cred_project, "Google credentials project")


def _header(ctx: _Ctx, env: str, selected: list[Path]) -> dict:
    return {
        "run_id": ctx.run_id,
        "env": env,
        "created_at": now_iso(),
        "overrides": secrets.redact_mapping(ctx.overrides),
        "notebooks_dir": str(ctx.notebooks_dir),
        "planned": [p.stem for p in selected],
        "cell_timeout": ctx.cell_timeout,
        **ctx.facts,
    }


def resume(
    run_dir: Path,
    *,
    overrides: dict | None = None,
    progress: Progress | None = None,
    break_stale_lock: bool = False,
    rerun: list[str] | None = None,
) -> RunResult:
    """Continue a failed run from its failed phase; phases recorded SUCCEEDED are skipped.

    `rerun` names phases (by name or number prefix) to run again even though they succeeded,
    e.g. 06 a day later, when the 24-hour checks have evidence; each is a new attempt in the
    same chain.
    """
    ctx, todo = prepare_resume(run_dir, overrides, progress, rerun)
    with kernel_forks(ctx, todo), run_lock(ctx, break_stale_lock):
        manifest.append(ctx.run_dir, manifest.reopen_record("resume"))
        _recover(ctx)
        return _chain(ctx, todo)


def prepare_resume(
    run_dir: Path, overrides=None, progress=None, rerun=None
) -> tuple[_Ctx, list[Path]]:
    """Check a resume before any side effect; return the run's context and the phases to run."""
    run_dir = Path(run_dir).resolve()
    manifest.require_intact(run_dir, "resume")  # a tampered run is refused before anything
    man = manifest.load(run_dir)
    header = man["header"]
    ctx = _stored_ctx(run_dir, header, overrides, header["notebooks_dir"], progress)
    done = {
        k for k, r in manifest.latest_status(man).items() if r["status"] == PhaseStatus.SUCCEEDED
    }
    again = {
        n for n in header["planned"] if any(n == r or n.startswith(f"{r}_") for r in rerun or [])
    }
    unknown = [
        r
        for r in rerun or []
        if not any(n == r or n.startswith(f"{r}_") for n in header["planned"])
    ]
    if unknown:
        raise ParamsError(
            "--rerun",
            ", ".join(unknown),
            "names no phase of this run",
            f"use one of {', '.join(header['planned'])}",
        )
    done -= again
    todo = [
        Path(header["notebooks_dir"]) / f"{n}.ipynb" for n in header["planned"] if n not in done
    ]
    require_preflight(ctx.params, [nb.stem for nb in todo], done, f"resume {run_dir}")
    check_credentials(ctx.params)
    for nb in todo:
        check_parameters(nb, ctx.parameters(nb.stem))
    return ctx, todo


def rollback(
    run_dir: Path,
    *,
    progress: Progress | None = None,
    notebooks_dir: Path | None = None,
    overrides: dict | None = None,
    break_stale_lock: bool = False,
    overwrite: bool = False,
    function: dict | None = None,
) -> RunResult:
    """Run 90_rollback with every backup any attempt of the run made, appended to its chain.

    By default 90 re-inserts exactly the rows each cleanup deleted; `overwrite` replaces each
    table with its earliest backup instead. Either way every backup is checked before any
    table changes. `function` holds 90's other parameters: `reason`, and `function_action`
    ("delete" with `confirm_delete`; the default pauses).
    """
    run_dir = Path(run_dir).resolve()
    manifest.require_intact(run_dir, "rollback")  # never restore from a tampered record
    header = manifest.load(run_dir)["header"]
    folder = Path(notebooks_dir or header["notebooks_dir"])
    nb = folder / f"{ROLLBACK}.ipynb"
    ctx = _stored_ctx(run_dir, header, overrides, folder, progress)
    check_credentials(ctx.params)
    with run_lock(ctx, break_stale_lock):
        manifest.append(run_dir, manifest.reopen_record("rollback"))
        _recover(ctx)
        extra = {"backups": _run_backups(run_dir), "overwrite": overwrite, **(function or {})}
        check_parameters(nb, ctx.parameters(ROLLBACK, extra))
        return _chain(ctx, [nb], extra={ROLLBACK: extra}, kind="rollback")


def _run_backups(run_dir: Path) -> list[dict]:
    """Return every backup any attempt of the run made (none: no cleanup deleted a row).

    A cleanup deletes only after its backup is verified and journaled, so a run with no backup
    recorded deleted nothing; its rollback still pauses or deletes the function and shows the
    code revert, and phase 90 says there was no data to restore.
    """
    return attempts.run_backups(manifest.load(run_dir))


def _recover(ctx: _Ctx) -> None:
    """Record the attempts a killed runner left unrecorded as INTERRUPTED (under the lock)."""
    planned = manifest.load(ctx.run_dir)["header"]["planned"]
    attempts.recover(ctx.run_dir, planned, ROLLBACK, ctx.params, ctx.overrides, ctx.progress)


def verify(run_dir: Path) -> manifest.VerifyResult:
    """Check the run's chain, files, completeness and anchor; name the first that changed."""
    return manifest.verify(Path(run_dir))


def _restore_overrides(stored: dict, given: dict) -> dict:
    merged = {**stored, **given}
    missing = [k for k, v in merged.items() if secrets.REDACTED in str(v)]
    if missing:
        raise ParamsError(
            "resume",
            missing[0],
            "was a secret and is not stored in the run",
            f"pass it again with --set {missing[0]}=...",
        )
    return merged


def _chain(
    ctx: _Ctx, notebooks: list[Path], extra: dict | None = None, kind: str = "phase"
) -> RunResult:
    """Run `notebooks` in order, then finalise the archive.

    Each attempt's notebook HTML is rendered in the background (notebook_html.Fragments) while
    the next phase runs, and the attempts archived before this chain while the first one runs,
    so finalise assembles the report instead of rendering every notebook at the end.
    """
    result = RunResult(ctx.run_id, ctx.run_dir, ctx.params.env)
    fragments = Fragments().start()  # loads its exporter while the first kernel starts
    kernels: list = []  # the kernels this chain holds, stopped however it ends
    try:
        for rec in manifest.load(ctx.run_dir)["records"]:
            if rec.get("notebook") and (ctx.run_dir / rec["notebook"]).exists():
                _render(ctx, fragments, rec)
        _run_phases(ctx, notebooks, extra or {}, kind, result, fragments, kernels)
        finalise(ctx.run_dir, ctx.params, ctx.overrides, fragments)
    finally:
        for kernel in kernels:
            kernel.shutdown()
        fragments.close()
    if result.failed:
        _raise_failed(ctx, result)
    return result


def start_kernel(ctx: _Ctx, nb: Path) -> engine.Kernel:
    """Start the kernel of phase notebook `nb`'s next attempt; return without waiting for it."""
    from runbook_lib.run import engine  # jupyter_client: only a run needs it, not verify

    # The attempt is fixed when its kernel starts: the kernel names its results and journal.
    attempt = next_attempt(ctx.run_dir, nb.stem)
    env = {**ctx.kernel_env, ATTEMPT_ENV: str(attempt)}
    kernel = engine.start_kernel(
        engine.kernel_name(), nb.stem, env, nb.parent, _kernel_imports(ctx, nb), ctx.forks
    )
    kernel.attempt = attempt
    ctx.progress({"event": "kernel", "phase": nb.stem, "started": kernel.forked})
    return kernel


def _kernel_imports(ctx: _Ctx, nb: Path) -> list[str]:
    from runbook_lib.run import engine

    return [
        *engine.BASE_IMPORTS,
        engine.WAREHOUSE_MODULES[ctx.params.backend],
        *engine.notebook_imports(nb),
    ]


@contextmanager
def kernel_forks(ctx: _Ctx, notebooks: list[Path]):
    """Fork the kernels of `notebooks` from one server while in the block (see forkserver.py).

    Off for a single notebook (the server's start is a kernel's), when FORK_KERNELS_ENV is "0",
    or where there is no fork and pidfd: every kernel is then launched from a new interpreter,
    as a refused fork is.
    """
    from runbook_lib.run import engine

    if len(notebooks) < 2 or os.environ.get(FORK_KERNELS_ENV) == "0" or not engine.can_fork():
        yield
        return
    # The first two phases' imports before the first fork (the second kernel is asked for as
    # soon as the first phase starts), the others' while they run.
    stages = [
        list(dict.fromkeys(m for nb in notebooks[:2] for m in _kernel_imports(ctx, nb))),
        list(dict.fromkeys(m for nb in notebooks[2:] for m in _kernel_imports(ctx, nb))),
    ]
    ctx.forks = engine.fork_server(
        engine.kernel_name(), ctx.kernel_env, notebooks[0].parent, stages
    )
    try:
        yield
    finally:
        ctx.forks.stop()
        ctx.forks = None


def _run_phases(ctx, notebooks, extra, kind, result, fragments, kernels) -> None:
    """Run each phase in its kernel (the next one started meanwhile); stop at the first failure.

    A phase's notebook HTML is sent to the render worker once the next phase is under way, so
    the render does not compete with the work between phases (records, the next kernel's start).
    """
    if notebooks and not kernels:
        kernels.append(start_kernel(ctx, notebooks[0]))
    render = None  # the previous phase's record, rendered once this phase has started
    for i, nb in enumerate(notebooks):
        # Start the next phase's kernel now so its boot and imports overlap this phase.
        if i + 1 < len(notebooks):
            kernels.append(start_kernel(ctx, notebooks[i + 1]))
        where = {"phase": nb.stem, "index": i + 1, "total": len(notebooks)}
        ctx.progress({"event": "phase_start", **where})
        params = ctx.parameters(nb.stem, extra.get(nb.stem))
        _render(ctx, fragments, render)
        rec = _run_phase(ctx, nb, kernels[0], params, kind)
        kernels.pop(0)  # stopped by _execute
        render = stored = manifest.append(ctx.run_dir, rec)
        result.records.append(stored)
        ctx.progress({"event": "phase_end", **where, **_outcome(rec)})
        if rec["status"] != PhaseStatus.SUCCEEDED:
            while kernels:  # the next phase's, started for nothing
                kernels.pop().shutdown()
            _skip_rest(ctx, result, notebooks[i + 1 :], nb.stem)
            result.failed = stored
            break
    _render(ctx, fragments, render)


def _render(ctx: _Ctx, fragments: Fragments, rec: dict | None) -> None:
    if rec and rec.get("notebook"):
        fragments.submit(ctx.run_dir / rec["notebook"], rec.get("results"))


def _outcome(rec: dict) -> dict:
    return {"status": rec["status"], "seconds": rec["seconds"], "reason": rec["reason"]}


def _skip_rest(ctx: _Ctx, result: RunResult, later: list[Path], failed: str) -> None:
    """Record every phase after a failed one as SKIPPED."""
    for nb in later:
        result.records.append(
            manifest.append(ctx.run_dir, skipped_record(nb.stem, f"not run: {failed} failed"))
        )


def _raise_failed(ctx: _Ctx, result: RunResult) -> None:
    err = PhaseFailedError(
        result.failed["phase"],
        result.failed["reason"],
        str(ctx.run_dir / result.failed["notebook"]),
    )
    err.result = result
    raise err


def _run_phase(ctx: _Ctx, nb: Path, kernel, parameters: dict, kind: str) -> dict:
    attempt = kernel.attempt
    out_name = attempt_file(nb.stem, attempt)
    out = ctx.run_dir / out_name
    started, t0 = now_iso(), time.perf_counter()
    error = _execute(ctx, nb, out, kernel, parameters)
    seconds = round(time.perf_counter() - t0, 3)
    return phase_record(
        ctx, nb.stem, (attempt, out_name), parameters, error, kind, started, seconds
    )


def phase_record(
    ctx: _Ctx,
    name: str,
    archived: tuple[int, str],
    parameters: dict,
    error,
    kind: str,
    started: str,
    seconds: float,
    mode: str = "headless",
) -> dict:
    """Return the manifest record of an executed phase notebook (headless or sealed)."""
    attempt, out_name = archived
    out = ctx.run_dir / out_name
    doc = read_results(ctx.run_dir, name, attempt)
    reason = failure_reason(out, doc, error, ctx.run_id, ctx.cell_timeout)
    scrubbed = scrub_phase(ctx.run_dir, name, out, parameters, ctx.params, attempt)
    if scrubbed:
        doc = read_results(ctx.run_dir, name, attempt)
    summary = attempts.journal_summary(ctx.run_dir, name, attempt)
    if reason and summary:  # a failed attempt says what it had done before it failed
        reason = f"{reason}; {attempts.journal.describe(summary)}"
    if reason:  # and whom to call: a person reading it at 4 a.m. needs a name, not only a fix
        reason = f"{reason} (contacts: {ctx.params.contacts.named()})"
    return {
        "phase": name,
        "kind": kind,
        "mode": mode,
        "attempt": attempt,
        "status": PhaseStatus.FAILED if reason else PhaseStatus.SUCCEEDED,
        "reason": reason,
        "started_at": started,
        "ended_at": now_iso(),
        "seconds": seconds,
        "parameters": secrets.redact_mapping(parameters),
        "results": (doc or {}).get("results", {}),
        "checks": (doc or {}).get("checks", []),
        "notebook": out_name if out.exists() else None,
        "journal": summary,
        "secrets_redacted": scrubbed,
    }


def _execute(ctx: _Ctx, nb: Path, out: Path, kernel, parameters: dict):
    """Execute one phase notebook in its kernel; return the exception it ended with, if any."""
    import papermill as pm

    try:
        pm.execute_notebook(
            str(nb),
            str(out),
            parameters=parameters,
            engine_name="runbook",
            kernel_name=kernel.km.kernel_name,
            km=kernel.km,
            progress=ctx.progress,
            phase=nb.stem,
            progress_bar=False,
            shutdown_kernel="immediate",
            execution_timeout=ctx.cell_timeout,
        )
    except Exception as e:  # noqa: BLE001 - every way a phase can fail is recorded below
        return e
    finally:
        kernel.shutdown()
    return None
