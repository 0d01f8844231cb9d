"""Interactive runs: a person steps through working copies in JupyterLab, sealed into the chain.

`runbook lab` makes a run like `runbook run` does (run id, run dir, manifest header, the
warehouse's lock), then writes each phase's working copy, with its parameters injected as
papermill injects them, into `<run dir>/lab/`, and serves only that folder: the tracked
`notebooks/` are never opened, so autosave cannot touch them. Kernels get the environment a
headless phase kernel gets (runner's kernel env) without the headless flag, so the forms show
and every library call belongs to the run. When a phase's `phase.finish()` has run and the
notebook is saved, its working copy is sealed: archived under the attempt's name and chained
into the manifest with the record a headless phase gets (runner.phase_record).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from runbook_lib.errors import RunbookError
from runbook_lib.run import manifest, runner
from runbook_lib.run.archive import attempt_file, attempt_name, attempts_on_disk, finalise
from runbook_lib.run.interact import HEADLESS_ENV, LAB_ENV
from runbook_lib.run.phase import SEAL_REQUESTS, read_results
from runbook_lib.statuses import PhaseStatus

Events = Callable[[dict], None]


def working_dir(run_dir: Path) -> Path:
    """Return the folder of a run's working copies (served by JupyterLab, never hashed)."""
    return Path(run_dir) / manifest.WORKING_DIR


def lab_kernel_env(ctx) -> dict[str, str]:
    """Return the environment of a lab kernel: a headless phase kernel's, marked interactive."""
    env = {k: v for k, v in ctx.kernel_env.items() if k != HEADLESS_ENV}
    return {**env, LAB_ENV: "1"}


def write_working_copy(ctx, nb: Path) -> Path:
    """Write phase `nb`'s working copy with its run parameters injected; keep an existing one."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    out = working_dir(ctx.run_dir) / nb.name
    if out.exists():  # a person's work in progress (`runbook lab --run` again)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    node = parameterize_notebook(load_notebook_node(str(nb)), ctx.parameters(nb.stem))
    nbformat.write(node, str(out))
    return out


@dataclass
class Session:
    """An interactive run being served: its context, working copies and where to open."""

    ctx: runner._Ctx
    copies: list[Path]
    sealed: list[dict] = field(default_factory=list)
    failed: dict[str, float] = field(default_factory=dict)  # phase -> mtime of the copy that failed
    new: bool = False  # this session created the run (nothing else is in it yet)

    @property
    def first(self) -> str:
        """Return the working copy JupyterLab opens first."""
        return self.copies[0].name if self.copies else ""


def new_session(env: str, *, phases=None, overrides=None, out_root=None, notebooks_dir=None):
    """Check a new interactive run like runner.run does; return (context, available, selected)."""
    return runner.prepare_run(env, phases, None, out_root, overrides, None, notebooks_dir)


def open_new(ctx, available: list[Path], selected: list[Path]) -> Session:
    """Create the run dir and manifest (the caller holds the lock); write the working copies."""
    runner.create_run_dir(ctx, available, selected)
    return Session(ctx, [write_working_copy(ctx, nb) for nb in selected], new=True)


def stored_session(run_dir: Path, overrides=None) -> runner._Ctx:
    """Return the context of an existing run, as resume rebuilds it."""
    run_dir = Path(run_dir).resolve()
    manifest.require_intact(run_dir, "lab")  # a tampered run is refused before anything
    header = manifest.load(run_dir)["header"]
    return runner._stored_ctx(run_dir, header, overrides, header["notebooks_dir"], None)


def open_existing(ctx, phases: list[str] | None = None) -> Session:
    """Write working copies of the named phases, or of every planned phase not yet SUCCEEDED."""
    man = manifest.load(ctx.run_dir)
    planned = man["header"]["planned"]
    done = {k for k, r in manifest.latest_status(man).items() if r["status"] == PhaseStatus.SUCCEEDED}
    names = _named(planned, phases, "--phases") if phases else [n for n in planned if n not in done]
    runner.require_preflight(ctx.params, names, done, f"lab --run {ctx.run_dir}")
    nbs = [ctx.notebooks_dir / f"{n}.ipynb" for n in names]
    for nb in nbs:
        runner.check_parameters(nb, ctx.parameters(nb.stem))
    manifest.append(ctx.run_dir, manifest.reopen_record("lab"))  # open until sealed again
    return Session(ctx, [write_working_copy(ctx, nb) for nb in nbs])


def _named(planned: list[str], wanted: list[str], source: str = "--interactive") -> list[str]:
    """Return the planned phases `wanted` names (name or number prefix), as --phases does."""
    return [p.stem for p in runner.select_phases([Path(n) for n in planned], wanted, source)]


def pending_seals(run_dir: Path) -> list[str]:
    """Return the phases whose finish() ran and whose saved working copy shows it."""
    folder = working_dir(run_dir) / SEAL_REQUESTS
    return sorted(p.stem for p in folder.glob("*.json") if _saved_after(run_dir, p))


def _saved_after(run_dir: Path, request: Path) -> bool:
    """Return whether the working copy on disk holds the line the finish() cell printed."""
    copy = working_dir(run_dir) / f"{request.stem}.ipynb"
    try:
        line = json.loads(request.read_text())["line"]
        nb = json.loads(copy.read_text())
    except (OSError, ValueError, KeyError):
        return False  # being written
    return any(
        line in "".join(out.get("text", ""))
        for cell in nb.get("cells", [])
        if cell.get("cell_type") == "code"
        for out in cell.get("outputs", [])
    )


def seal(ctx, name: str) -> dict:
    """Archive phase `name`'s working copy as its next attempt and chain its record; return it.

    The caller holds the run's lock. The record is the one a headless phase gets, with the same
    verdict (every code cell ran, finish() wrote SUCCEEDED), and the run's log, report and
    archive record are rewritten, so verify, report, resume and rollback see the phase.
    """
    copy = working_dir(ctx.run_dir) / f"{name}.ipynb"
    if not copy.exists():
        raise RunbookError(
            f"phase {name} has no working copy in {copy.parent} (to fix this, open it with "
            f"`runbook lab --run {ctx.run_dir}` first)"
        )
    attempt, out_name = _sealed_attempt(ctx.run_dir, name)
    shutil.copyfile(copy, ctx.run_dir / out_name)
    parameters = json.loads(copy.read_text())["metadata"].get("papermill", {}).get("parameters", {})
    doc = read_results(ctx.run_dir, name, attempt) or {}
    started = doc.get("started_at")
    rec = runner.phase_record(
        ctx,
        name,
        (attempt, out_name),
        parameters,
        None,
        "phase",
        started,
        _seconds(started, doc.get("finished_at")),
        mode="interactive",
    )
    stored = manifest.append(ctx.run_dir, rec)
    (working_dir(ctx.run_dir) / SEAL_REQUESTS / f"{name}.json").unlink(missing_ok=True)
    finalise(ctx.run_dir, ctx.params, ctx.overrides)
    return stored


def _sealed_attempt(run_dir: Path, name: str) -> tuple[int, str]:
    """Return the attempt the working copy's kernel wrote (its results and journal) and its name.

    A lab kernel numbers its attempt when the phase starts (the next one not on disk), so by the
    time it is sealed its results file is on disk: the sealed notebook must take that number,
    not the one after it. With no unrecorded attempt on disk, the next one is used.
    """
    recorded = {
        r.get("attempt") for r in manifest.load(run_dir)["records"] if r.get("phase") == name
    }
    open_ = [
        n
        for n in attempts_on_disk(run_dir, name)
        if n not in recorded and not (run_dir / attempt_file(name, n)).exists()
    ]
    if open_:
        return max(open_), attempt_file(name, max(open_))
    return attempt_name(run_dir, name)


def _seconds(started: str | None, ended: str | None) -> float | None:
    if not started:
        return None
    end = dt.datetime.fromisoformat(ended) if ended else dt.datetime.now(dt.UTC)
    return round((end - dt.datetime.fromisoformat(started)).total_seconds(), 3)


@contextmanager
def _stop_on_signals() -> Iterator[list[int]]:
    """Turn SIGTERM (and SIGINT) into a flag the serve loop checks; restore the handlers after."""
    got: list[int] = []
    old = {
        s: signal.signal(s, lambda n, _f: got.append(n)) for s in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def serve(session: Session, port: int | None = None, events: Events | None = None) -> list[dict]:
    """Serve the working copies until Ctrl-C or SIGTERM, sealing each phase once it is saved.

    The caller holds the run's lock for the whole session. On the way out the server stops
    (and with it every kernel), and phases saved with finish() are sealed one last time.
    """
    from runbook_lib.run import lab

    events = events or (lambda e: None)
    try:
        server = lab.start(working_dir(session.ctx.run_dir), lab_kernel_env(session.ctx), port)
    except lab.LabStartError:
        if session.new:  # nothing ran in it: leave no empty run behind
            shutil.rmtree(session.ctx.run_dir, ignore_errors=True)
        raise
    try:
        with _stop_on_signals() as got:
            events({"event": "serving", "url": server.url(session.first), "server": server})
            while not got and server.alive():
                _seal_pending(session, events)
                time.sleep(0.5)
        events({"event": "stopping", "signal": got[0] if got else None})
    finally:
        server.stop()
    _seal_pending(session, events)
    return session.sealed


def _seal_pending(session: Session, events: Events) -> None:
    """Seal every phase whose saved copy shows finish(); a phase that fails is reported, not fatal.

    A failure to seal must not end the session (the person's kernels and unsaved work live in
    it): it is reported once per saved version of the copy and tried again after the next save.
    """
    for name in pending_seals(session.ctx.run_dir):
        saved = (working_dir(session.ctx.run_dir) / f"{name}.ipynb").stat().st_mtime
        if session.failed.get(name) == saved:
            continue
        try:
            rec = seal(session.ctx, name)
        except Exception as e:  # noqa: BLE001 - reported to the person; the session goes on
            session.failed[name] = saved
            events({"event": "seal_failed", "phase": name, "error": f"{type(e).__name__}: {e}"})
            continue
        session.failed.pop(name, None)
        session.sealed.append(rec)
        events(
            {
                "event": "sealed",
                "phase": name,
                "status": rec["status"],
                "reason": rec["reason"],
                "notebook": rec["notebook"],
                "seq": rec["seq"],
            }
        )


def headless_before(ctx, todo: list[Path], interactive: list[str]) -> tuple[list[Path], list[str]]:
    """Split a resume: the phases to run headless before the first interactive one, and those."""
    planned = manifest.load(ctx.run_dir)["header"]["planned"]
    names = _named(planned, interactive)
    first = next((i for i, nb in enumerate(todo) if nb.stem in names), len(todo))
    return todo[:first], names


def run_headless(ctx, notebooks: list[Path]):
    """Run phases headless in this run (the caller holds the lock); raise if one fails."""
    manifest.append(ctx.run_dir, manifest.reopen_record("resume"))
    return runner._chain(ctx, notebooks)


def resolve_phases(ctx, wanted: list[str]) -> list[str]:
    """Return the run's planned phases that `wanted` names (name or number prefix)."""
    return _named(manifest.load(ctx.run_dir)["header"]["planned"], wanted, "seal")
