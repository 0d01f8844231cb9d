"""Chain the phase notebooks into one archived, verifiable run (papermill's Python API).

One process, a fresh kernel per phase (started while the previous phase runs), each executed
notebook saved under `outputs/<env>/<run_id>/` with a hash-chained manifest record. A phase
counts as SUCCEEDED only when every code cell ran and `phase.finish()` wrote its results file
with status SUCCEEDED: papermill saves a dead-kernel or timed-out notebook with no error
banner and treats `sys.exit(0)` as success, so its own verdict is not enough.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets as _secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runbook_lib import paths
from runbook_lib.errors import ParamsError, PhaseFailedError, RunbookError
from runbook_lib.run import lock, manifest
from runbook_lib.run.interact import HEADLESS_ENV
from runbook_lib.run.params import Params, load_params
from runbook_lib.run.phase import OVERRIDES_ENV, read_results

log = logging.getLogger(__name__)
ROLLBACK = "90_rollback"
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
        return manifest.SUCCEEDED if self.ok else manifest.FAILED


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


def phase_notebooks(notebooks_dir: Path | None = None) -> list[Path]:
    """Return the chain's notebooks: `NN_*.ipynb` with NN < 90, in order."""
    folder = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if int(p.name[:2]) < 90)


def new_run_id() -> str:
    """Return a sortable, unique run id: UTC time plus a random suffix."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{_secrets.token_hex(2)}"


def check_parameters(nb_path: Path, supplied: dict) -> None:
    """Raise ParamsError naming phase and key for any parameter the notebook does not declare."""
    import papermill as pm

    declared = pm.inspect_notebook(str(nb_path))
    for key in supplied:
        if key not in declared:
            raise ParamsError(
                f"notebooks/{nb_path.name}",
                key,
                "is not a parameter this phase declares"
                + ("" if declared else " (it has no cell tagged 'parameters')"),
                f"declare `{key} = ...` in its parameters cell or remove it from "
                f"params phases.{nb_path.stem}",
            )


def _phase_parameters(ctx: _Ctx, name: str, extra: dict | None = None) -> dict:
    base = {
        "env": ctx.params.env,
        "run_dir": str(ctx.run_dir),
        "today": ctx.params.effective_today().isoformat(),
    }
    return {**base, **ctx.params.phases.get(name, {}), **(extra or {})}


def _select(available: list[Path], phases: list[str] | None) -> list[Path]:
    if not phases:
        return available
    chosen = []
    for want in phases:
        hits = [p for p in available if p.stem == want or p.stem[:2] == want or p.stem[3:] == want]
        if not hits:
            raise ParamsError(
                "--phases",
                want,
                "names no phase notebook",
                f"use one of {', '.join(p.stem for p in available)}",
            )
        chosen += [h for h in hits if h not in chosen]
    return sorted(chosen)


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
        "MPLBACKEND": "",
    }
    return ctx


def _check_phase_keys(params: Params, notebooks_dir: Path) -> None:
    known = {p.stem for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb")}
    for name in params.phases:
        if name not in known:
            raise ParamsError(
                params.source,
                f"phases.{name}",
                "names no phase notebook",
                f"use one of {', '.join(sorted(known))}",
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
    notebooks_dir = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    available = phase_notebooks(notebooks_dir)
    if not available:
        raise RunbookError(f"no phase notebooks in {notebooks_dir} (to fix this, check the path)")
    selected = _select(available, phases)
    run_id = run_id or new_run_id()
    run_dir = Path(out_root or paths.OUTPUTS_DIR) / env / run_id
    ctx = _make_ctx(env, run_dir, run_id, overrides, notebooks_dir, cell_timeout, progress)
    _check_phase_keys(ctx.params, notebooks_dir)
    for nb in selected:  # strict parameters before any side effect
        check_parameters(nb, _phase_parameters(ctx, nb.stem))
    with lock.held(run_dir.parent / ".lock", run_id, break_stale_lock):
        run_dir.mkdir(parents=True, exist_ok=False)
        manifest.create(
            run_dir,
            {
                "run_id": run_id,
                "env": env,
                "created_at": _now(),
                "overrides": manifest.redact(ctx.overrides),
                "notebooks_dir": str(notebooks_dir),
                "planned": [p.stem for p in selected],
                "cell_timeout": cell_timeout,
            },
        )
        for nb in available:
            if nb not in selected:
                manifest.append(run_dir, _skipped(nb.stem, "not selected for this run"))
        return _chain(ctx, selected)


def resume(
    run_dir: Path,
    *,
    overrides: dict | None = None,
    progress: Progress | None = None,
    break_stale_lock: bool = False,
) -> RunResult:
    """Continue a failed run from its failed phase; phases recorded SUCCEEDED are skipped."""
    run_dir = Path(run_dir).resolve()
    man = manifest.load(run_dir)
    header = man["header"]
    merged = _restore_overrides(header["overrides"], overrides or {})
    ctx = _make_ctx(
        header["env"],
        run_dir,
        header["run_id"],
        merged,
        header["notebooks_dir"],
        header.get("cell_timeout", 600),
        progress,
    )
    done = {k for k, r in manifest.latest_status(man).items() if r["status"] == manifest.SUCCEEDED}
    todo = [
        Path(header["notebooks_dir"]) / f"{n}.ipynb" for n in header["planned"] if n not in done
    ]
    for nb in todo:
        check_parameters(nb, _phase_parameters(ctx, nb.stem))
    with lock.held(run_dir.parent / ".lock", header["run_id"], break_stale_lock):
        return _chain(ctx, todo)


def rollback(
    run_dir: Path,
    *,
    progress: Progress | None = None,
    notebooks_dir: Path | None = None,
    overrides: dict | None = None,
    break_stale_lock: bool = False,
) -> RunResult:
    """Run 90_rollback with the backups the run's cleanup recorded, appended to its chain."""
    run_dir = Path(run_dir).resolve()
    man = manifest.load(run_dir)
    header = man["header"]
    backups = next(
        (
            r["results"]["backups"]
            for r in reversed(man["records"])
            if (r.get("results") or {}).get("backups")
        ),
        None,
    )
    if not backups:
        raise RunbookError(
            f"run {header['run_id']} recorded no backups, so there is nothing to "
            f"restore (to fix this, check the 02 phase's results in "
            f"{run_dir / 'manifest.json'})"
        )
    folder = Path(notebooks_dir or header["notebooks_dir"])
    nb = folder / f"{ROLLBACK}.ipynb"
    merged = _restore_overrides(header["overrides"], overrides or {})
    ctx = _make_ctx(
        header["env"],
        run_dir,
        header["run_id"],
        merged,
        folder,
        header.get("cell_timeout", 600),
        progress,
    )
    extra = {"backups": backups}
    check_parameters(nb, _phase_parameters(ctx, ROLLBACK, extra))
    with lock.held(run_dir.parent / ".lock", header["run_id"], break_stale_lock):
        return _chain(ctx, [nb], extra={ROLLBACK: extra}, kind="rollback")


def verify(run_dir: Path) -> manifest.VerifyResult:
    """Recompute the run's hash chain and notebook hashes; name the first thing that changed."""
    return manifest.verify(Path(run_dir))


def _restore_overrides(stored: dict, given: dict) -> dict:
    merged = {**stored, **given}
    missing = [k for k, v in merged.items() if v == manifest.REDACTED]
    if missing:
        raise ParamsError(
            "resume",
            missing[0],
            "was a secret and is not stored in the run",
            f"pass it again with --set {missing[0]}=...",
        )
    return merged


def _skipped(name: str, reason: str) -> dict:
    return {
        "phase": name,
        "kind": "phase",
        "status": manifest.SKIPPED,
        "reason": reason,
        "started_at": None,
        "ended_at": None,
        "parameters": {},
        "results": {},
        "checks": [],
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _chain(
    ctx: _Ctx, notebooks: list[Path], extra: dict | None = None, kind: str = "phase"
) -> RunResult:
    from runbook_lib.run import engine

    kname = engine.kernel_name()
    result = RunResult(ctx.run_id, ctx.run_dir, ctx.params.env)

    def start(nb: Path) -> engine.Kernel:
        imports = list(engine.BASE_IMPORTS) + engine.notebook_imports(nb)
        return engine.start_kernel(kname, nb.stem, ctx.kernel_env, nb.parent, imports)

    kernel = start(notebooks[0]) if notebooks else None
    for i, nb in enumerate(notebooks):
        # Start the next phase's kernel now so its boot and imports overlap this phase.
        upcoming = start(notebooks[i + 1]) if i + 1 < len(notebooks) else None
        ctx.progress(
            {"event": "phase_start", "phase": nb.stem, "index": i + 1, "total": len(notebooks)}
        )
        params = _phase_parameters(ctx, nb.stem, (extra or {}).get(nb.stem))
        rec = _run_phase(ctx, nb, kernel, params, kname, kind)
        stored = manifest.append(ctx.run_dir, rec)
        result.records.append(stored)
        ctx.progress(
            {
                "event": "phase_end",
                "phase": nb.stem,
                "index": i + 1,
                "total": len(notebooks),
                "status": rec["status"],
                "seconds": rec["seconds"],
                "reason": rec["reason"],
            }
        )
        kernel = upcoming
        if rec["status"] != manifest.SUCCEEDED:
            if kernel:
                kernel.shutdown()
            for later in notebooks[i + 1 :]:
                result.records.append(
                    manifest.append(ctx.run_dir, _skipped(later.stem, f"not run: {nb.stem} failed"))
                )
            result.failed = stored
            break
    _finalise(ctx)
    if result.failed:
        err = PhaseFailedError(
            result.failed["phase"],
            result.failed["reason"],
            str(ctx.run_dir / result.failed["notebook"]),
        )
        err.result = result
        raise err
    return result


def _attempt_name(run_dir: Path, name: str) -> tuple[int, str]:
    n = 1
    while (run_dir / (f"{name}.ipynb" if n == 1 else f"{name}.attempt{n}.ipynb")).exists():
        n += 1
    return n, f"{name}.ipynb" if n == 1 else f"{name}.attempt{n}.ipynb"


def _run_phase(ctx: _Ctx, nb: Path, kernel, parameters: dict, kname: str, kind: str) -> dict:
    import papermill as pm

    attempt, out_name = _attempt_name(ctx.run_dir, nb.stem)
    out = ctx.run_dir / out_name
    (ctx.run_dir / "results" / f"{nb.stem}.json").unlink(missing_ok=True)
    started, t0, error = _now(), time.perf_counter(), None
    try:
        pm.execute_notebook(
            str(nb),
            str(out),
            parameters=parameters,
            engine_name="runbook",
            kernel_name=kname,
            km=kernel.km,
            progress=ctx.progress,
            phase=nb.stem,
            progress_bar=False,
            shutdown_kernel="immediate",
            execution_timeout=ctx.cell_timeout,
        )
    except Exception as e:  # noqa: BLE001 - every way a phase can fail is recorded below
        error = e
    finally:
        kernel.shutdown()
    doc = read_results(ctx.run_dir, nb.stem)
    reason = failure_reason(out, doc, error, ctx.run_id, ctx.cell_timeout)
    secret_values = manifest.secret_values(parameters) | manifest.secret_values(
        ctx.params.model_dump(mode="json")
    )
    scrubbed = sum(
        manifest.scrub_file(p, secret_values)
        for p in (out, ctx.run_dir / "results" / f"{nb.stem}.json")
    )
    if scrubbed:
        log.warning("redacted %d secret value(s) from the archive of %s", scrubbed, nb.stem)
        doc = read_results(ctx.run_dir, nb.stem)
    return {
        "phase": nb.stem,
        "kind": kind,
        "attempt": attempt,
        "status": manifest.FAILED if reason else manifest.SUCCEEDED,
        "reason": reason,
        "started_at": started,
        "ended_at": _now(),
        "seconds": round(time.perf_counter() - t0, 3),
        "parameters": manifest.redact(parameters),
        "results": (doc or {}).get("results", {}),
        "checks": (doc or {}).get("checks", []),
        "notebook": out_name if out.exists() else None,
        "secrets_redacted": scrubbed,
    }


def failure_reason(
    nb_path: Path, doc: dict | None, error: Exception | None, run_id: str, timeout: int
) -> str | None:
    """Return why a phase failed (None when it succeeded), from papermill, notebook and results."""
    if error is not None:
        return _error_text(error, timeout)
    if not nb_path.exists():
        return "no executed notebook was written"
    nb = json.loads(nb_path.read_text())
    raised = _first_error(nb)
    if raised:
        return raised
    for i, cell in enumerate(nb.get("cells", [])):
        if (
            cell.get("cell_type") == "code"
            and "".join(cell.get("source", [])).strip()
            and cell.get("execution_count") is None
        ):
            return (
                f"cell {i} never ran: the notebook stopped early without an error "
                f"(sys.exit() or a lost kernel)"
            )
    if doc is None:
        return "phase.finish() never ran: the phase wrote no results file"
    if doc.get("run_id") != run_id:
        return f"the results file belongs to run {doc.get('run_id')!r}, not this run"
    if doc.get("status") != manifest.SUCCEEDED:
        failed = [c["check"] for c in doc.get("checks", []) if not c["ok"]]
        if failed:
            return f"checks failed: {', '.join(failed)}"
        if not doc.get("checks"):
            return "zero checks ran (zero checks run is a failure)"
        return "stopped before phase.finish()"
    return None


def _first_error(nb: dict) -> str | None:
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                hint = (
                    " (a phase never ends with sys.exit: raise an error instead)"
                    if out.get("ename") == "SystemExit"
                    else ""
                )
                return f"cell {i} raised {out.get('ename')}: {out.get('evalue')}{hint}"
    if nb.get("metadata", {}).get("papermill", {}).get("exception"):
        return "a cell raised an exception"
    return None


def _error_text(error: Exception, timeout: int) -> str:
    name = type(error).__name__
    if name == "PapermillExecutionError":
        return f"cell {error.cell_index} raised {error.ename}: {error.evalue}"
    if name == "DeadKernelError":
        return "the kernel died while a cell ran (killed, out of memory, or os._exit)"
    if name == "CellTimeoutError":
        return f"a cell ran past the {timeout} s cell timeout"
    return f"{name}: {error}"


def _finalise(ctx: _Ctx) -> None:
    """Write deployment_log.md and report.html from the manifest (best effort, never fatal)."""
    from runbook_lib.run import deployment_log, report

    for what, fn in (("deployment log", deployment_log.write), ("report", report.write)):
        try:
            fn(ctx.run_dir)
        except Exception:  # noqa: BLE001 - the run's verdict must not depend on its report
            log.exception("could not write the %s of %s", what, ctx.run_dir)
    values = manifest.secret_values(ctx.params.model_dump(mode="json")) | manifest.secret_values(
        ctx.overrides
    )
    leaks = manifest.find_secrets(ctx.run_dir, values)
    for rel in leaks:
        manifest.scrub_file(ctx.run_dir / rel, values)
        log.error("a secret value reached %s; it was redacted", rel)
