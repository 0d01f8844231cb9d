"""`runbook lab | seal` and `resume --interactive`: interactive runs in JupyterLab."""

from __future__ import annotations

import signal

from runbook_lib.run import interactive, runner
from runbook_lib.statuses import PhaseStatus

PORT_HELP = (
    "port JupyterLab listens on, on 127.0.0.1 (default: a free port); a busy port is an error, "
    "and the URL printed is the one the server reports"
)


def _events(e: dict) -> None:
    if e["event"] == "serving":
        print(f"JupyterLab: {e['url']}", flush=True)
        print(
            "Ctrl-C stops JupyterLab and its kernels and releases the lock; phases seal when "
            "their last cell (phase.finish()) has run and the notebook is saved.",
            flush=True,
        )
    elif e["event"] == "sealed":
        why = f": {e['reason']}" if e.get("reason") else ""
        print(
            f"sealed {e['phase']}: {e['status']} as {e['notebook']} (record {e['seq']}){why}",
            flush=True,
        )
    elif e["event"] == "seal_failed":
        print(
            f"could not seal {e['phase']}: {e['error']} (it is tried again at the notebook's next "
            f"save; `runbook seal RUN_DIR {e['phase']}` seals it by hand after the lab closes)",
            flush=True,
        )
    elif e["event"] == "stopping":
        name = signal.Signals(e["signal"]).name if e.get("signal") else "server exit"
        print(f"stopping JupyterLab ({name}) ...", flush=True)


def _finish(session: interactive.Session) -> int:
    run_dir = session.ctx.run_dir
    sealed = ", ".join(f"{r['phase']} {r['status']}" for r in session.sealed) or "none"
    print(f"run {session.ctx.run_id}: lab closed; sealed this session: {sealed}")
    print(f"archived in {run_dir}; the lock is released")
    print(
        f"next: `runbook lab --run {run_dir}` to go on stepping through, "
        f"`runbook resume {run_dir}` to run the rest headless, `runbook verify {run_dir}`"
    )
    return 0


def _lab(args) -> int:
    from runbook_lib.cli.run_cmds import _parse_set

    overrides = _parse_set(args.set)
    if args.run:
        ctx = interactive.stored_session(args.run, overrides)
        with runner.run_lock(ctx, args.break_stale_lock):
            session = interactive.open_existing(ctx, args.phases)
            interactive.serve(session, args.port, _events)
    else:
        ctx, available, selected = interactive.new_session(
            args.env, phases=args.phases, overrides=overrides
        )
        with runner.run_lock(ctx, args.break_stale_lock):
            session = interactive.open_new(ctx, available, selected)
            print(f"run {ctx.run_id}: working copies in {interactive.working_dir(ctx.run_dir)}")
            interactive.serve(session, args.port, _events)
    return _finish(session)


def resume_interactive(args) -> int:
    """`runbook resume RUN --interactive PHASE`: earlier phases headless, then JupyterLab."""
    from runbook_lib.cli.run_cmds import _parse_set

    ctx, todo = runner.prepare_resume(args.run_dir, _parse_set(args.set), None, args.rerun)
    before, names = interactive.headless_before(ctx, todo, args.interactive)
    with runner.run_lock(ctx, args.break_stale_lock):
        if before:
            ctx.progress = _headless_progress()
            interactive.run_headless(ctx, before)
        session = interactive.open_existing(ctx, names)
        interactive.serve(session, args.port, _events)
    return _finish(session)


def _headless_progress():
    from runbook_lib.cli.run_cmds import _Progress

    return _Progress()


def _seal(args) -> int:
    ctx = interactive.stored_session(args.run_dir)
    names = args.phases or interactive.pending_seals(ctx.run_dir)
    if not names:
        print(
            f"nothing to seal in {ctx.run_dir}: no phase's finish() is in a saved working copy "
            f"(name a phase to seal it as it is, e.g. `runbook seal {args.run_dir} 02`)"
        )
        return 1
    failed = 0
    with runner.run_lock(ctx, args.break_stale_lock):
        for name in interactive.resolve_phases(ctx, names):
            rec = interactive.seal(ctx, name)
            why = f": {rec['reason']}" if rec["reason"] else ""
            print(f"sealed {name}: {rec['status']} as {rec['notebook']} (record {rec['seq']}){why}")
            failed += rec["status"] != PhaseStatus.SUCCEEDED
    print(f"check it with: runbook verify {ctx.run_dir}")
    return 1 if failed else 0


def register(sub) -> None:
    """Add lab and seal."""
    from runbook_lib.cli.run_cmds import _lock_flag

    p = sub.add_parser(
        "lab",
        help="step through a run's phases in JupyterLab: working copies in the run's folder, "
        "the lock held, each phase sealed into the run when done",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", help="start a new interactive run of this environment")
    where.add_argument("--run", metavar="RUN_DIR", help="go on with an existing run")
    p.add_argument("--phases", nargs="+", help="only these phases (name or number, e.g. 02)")
    p.add_argument("--port", type=int, help=PORT_HELP)
    _lock_flag(p)
    p.set_defaults(func=_lab)
    p = sub.add_parser(
        "seal", help="archive the working copies of an interactive run's phases into its chain"
    )
    p.add_argument("run_dir")
    p.add_argument(
        "phases",
        nargs="*",
        help="phases to seal as they are (default: those whose finish() ran and were saved)",
    )
    p.add_argument(
        "--break-stale-lock",
        action="store_true",
        help="remove the environment's lock if the process holding it is gone",
    )
    p.set_defaults(func=_seal)
