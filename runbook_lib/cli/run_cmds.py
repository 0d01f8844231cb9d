"""`runbook run | resume | verify | rollback`: the archived, verifiable run."""

from __future__ import annotations

import argparse
import sys

import yaml

from runbook_lib.cli.common import add_lock_flag
from runbook_lib.errors import ParamsError, PhaseFailedError
from runbook_lib.run import runner
from runbook_lib.run.params import _UniqueKeyLoader
from runbook_lib.run.phases import yaml_text


def _overlap(a: str, b: str) -> bool:
    """Return whether dotted keys `a` and `b` name the same value or one contains the other."""
    return a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")


def _parse_set(items: list[str]) -> dict:
    """Turn `key=value` pairs into params overrides; values are read as YAML scalars."""
    out, given = {}, {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamsError("--set", item, "is not key=value", "write --set cleanup.dry_run=true")
        clash = next((k for k in out if _overlap(k, key)), None)
        if clash:
            raise ParamsError(
                "--set",
                key,
                f"is set twice (--set {given[clash]} and --set {item})",
                "keep only one --set for each key",
            )
        # Dates stay strings, as in the params files (the model parses them).
        out[key] = yaml.load(value, Loader=_UniqueKeyLoader) if value else ""
        given[key] = item
    return out


def _blame_set(err: ParamsError, items: list[str]) -> ParamsError:
    """Return `err` attributed to the --set that caused it (as typed), when one did."""
    overrides = _parse_set(items)
    key = next((k for k in overrides if _overlap(k, err.key)), None)
    if key is None or err.source.startswith("--set"):
        return err
    raw = next(i for i in items if i.partition("=")[0].strip() == key)
    fix = err.fix.replace(f"{err.key} in {err.source}", f"the value of --set {key}")
    # Advice to quote shows the text as typed (yes), not as YAML read it back (true).
    typed = raw.partition("=")[2]
    fix = fix.replace(f"'{yaml_text(overrides[key])}'", f"'{typed}'")
    blamed = ParamsError(f"--set {raw}", err.key, err.problem, fix)
    blamed.__cause__ = err
    return blamed


class _Progress:
    """Print which phase of how many, and cell progress within it (one line per phase off a tty)."""

    def __init__(self):
        self.tty = sys.stdout.isatty()

    def __call__(self, e: dict) -> None:
        if e["event"] == "interrupted":
            print(
                f"recorded {e['phase']} attempt {e['attempt']} as INTERRUPTED: {e['reason']}",
                flush=True,
            )
        elif e["event"] == "phase_start":
            print(f"[{e['index']}/{e['total']}] {e['phase']} ...", flush=True)
        elif e["event"] == "cell" and self.tty:
            print(f"\r    cell {e['cell']}/{e['cells']}", end="", flush=True)
        elif e["event"] == "phase_end":
            end = "\r" if self.tty else ""
            why = f": {e['reason']}" if e.get("reason") else ""
            print(f"{end}    {e['status']} in {e['seconds']:.1f} s{why}", flush=True)


def _done(result: runner.RunResult) -> int:
    log = result.run_dir / "deployment_log.md"
    if log.exists():  # what the run measured, in the seed runbook's own template
        print()
        print(log.read_text().strip())
        print()
    print(f"run {result.run_id}: {result.status}; archived in {result.run_dir}")
    print(f"check it any time with: runbook verify {result.run_dir}")
    return 0


def _guard(fn):
    def wrapped(args):
        try:
            return _done(fn(args))
        except PhaseFailedError as e:
            if getattr(e, "result", None):
                print(f"run {e.result.run_id}: FAILED; archived in {e.result.run_dir}")
            raise
        except ParamsError as e:
            raise _blame_set(e, args.set or []) from None

    return wrapped


@_guard
def _run(args):
    if args.cell_timeout < 1:
        raise ParamsError(
            "command line", "--cell-timeout", f"must be 1 or more seconds, got {args.cell_timeout}",
            "pass a positive number of seconds per cell, e.g. --cell-timeout 600 (the default)",
        )  # fmt: skip
    return runner.run(
        args.env,
        phases=args.phases,
        run_id=args.run_id,
        overrides=_parse_set(args.set),
        progress=_Progress(),
        cell_timeout=args.cell_timeout,
        break_stale_lock=args.break_stale_lock,
    )


def _resume(args):
    if args.interactive:
        from runbook_lib.cli.lab_cmds import resume_interactive

        return resume_interactive(args)
    return _resume_headless(args)


@_guard
def _resume_headless(args):
    return runner.resume(
        args.run_dir,
        overrides=_parse_set(args.set),
        progress=_Progress(),
        break_stale_lock=args.break_stale_lock,
        rerun=args.rerun,
    )


def _followup(args) -> int:
    """Rerun phase 06 of a run on today's evidence; print its verdict (exit 0 unless it fails)."""
    from runbook_lib.run import followup

    code = _guard(
        lambda a: followup.followup(
            a.run_dir,
            overrides=_parse_set(a.set),
            progress=_Progress(),
            break_stale_lock=a.break_stale_lock,
        )
    )(args)
    word, why = followup.verdict(args.run_dir)
    print(f"verdict: {word}: {why}")
    return code


@_guard
def _rollback(args):
    return runner.rollback(
        args.run,
        progress=_Progress(),
        overrides=_parse_set(args.set),
        break_stale_lock=args.break_stale_lock,
        overwrite=args.overwrite,
        function={
            "reason": args.reason or "",
            "function_action": "delete" if args.delete_function else "pause",
            "confirm_delete": args.confirm_delete or "",
        },
    )


def _anchor_line(anchor) -> str:
    """Return the anchor's state; its detail when it is not already a listed problem."""
    if anchor is None:
        return "  anchor: not read"
    place = f" in {anchor.where}" if anchor.where else ""
    if anchor.state in ("matches", "behind"):
        return f"  anchor: {anchor.state}: {anchor.detail}{place}"
    return f"  anchor: {anchor.state}{place}"


def _verify(args) -> int:
    """Print VERIFIED (exit 0), INCOMPLETE with what is missing, or TAMPERED (exit 1)."""
    result = runner.verify(args.run_dir)
    if result.ok:
        print(
            f"VERIFIED: {result.records} records, their notebooks and {result.files} other "
            f"archived files are intact, every planned phase has a record, the chain ends in "
            f"its archive record ({args.run_dir})"
        )
        print(_anchor_line(result.anchor))
        return 0
    found = result.problems or result.missing
    print(f"{result.verdict}: {found[0]}", file=sys.stderr)
    also = "also" if result.problems else "also missing"
    for line in [*(f"  {also}: {p}" for p in found[1:]), _anchor_line(result.anchor)]:
        print(line, file=sys.stderr)
    return 1


def _lock_flag(p: argparse.ArgumentParser) -> None:
    add_lock_flag(p)
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a params key (dotted), e.g. cleanup.dry_run=true",
    )


def register(sub) -> None:
    """Add run, resume, verify, rollback and lab."""
    p = sub.add_parser("run", help="run the phase notebooks of an environment into an archive")
    p.add_argument("--env", required=True, help="environment: a params/<env>.yaml file")
    p.add_argument("--phases", nargs="+", help="only these phases (name or number, e.g. 00 02)")
    p.add_argument("--run-id", help="run id (default: UTC time and a random suffix)")
    p.add_argument("--cell-timeout", type=int, default=600, help="seconds per cell (600)")
    _lock_flag(p)
    p.set_defaults(func=_run)
    p = sub.add_parser("resume", help="continue a failed run from its failed phase")
    p.add_argument("run_dir")
    p.add_argument(
        "--rerun",
        nargs="+",
        metavar="PHASE",
        default=None,
        help="run these phases again even though they succeeded (e.g. 06 a day later)",
    )
    p.add_argument(
        "--interactive",
        nargs="+",
        metavar="PHASE",
        default=None,
        help="step through these phases in JupyterLab (the phases before them run headless "
        "first); `runbook resume RUN` afterwards runs the rest headless",
    )
    p.add_argument(
        "--port", type=int, help="with --interactive: JupyterLab's port (default: a free one)"
    )
    _lock_flag(p)
    p.set_defaults(func=_resume)
    p = sub.add_parser(
        "followup",
        help="rerun a deployment's phase 06 on the evidence since (nightly backfills, the daily "
        "monitor, scheduled cleanups): PENDING becomes PASS or FAIL, DEPLOYED may become VERIFIED",
    )
    p.add_argument("run_dir")
    _lock_flag(p)
    p.set_defaults(func=_followup)
    p = sub.add_parser(
        "verify",
        help="check a run's hash chain, archived files, completeness and warehouse anchor",
    )
    p.add_argument("run_dir")
    p.set_defaults(func=_verify)
    p = sub.add_parser(
        "rollback",
        help="put back exactly the rows every cleanup attempt of a run deleted (90_rollback)",
    )
    p.add_argument("--run", required=True, help="the run directory whose backups to restore")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace each table by its earliest backup instead (rows written since are lost)",
    )
    p.add_argument("--reason", help="why: recorded, and the log and report say ROLLED BACK "
                   "(without it the record says none was given)")
    p.add_argument(
        "--delete-function", action="store_true",
        help="delete the scheduler job and the function instead of pausing the job "
        "(needs --confirm-delete)",
    )
    p.add_argument("--confirm-delete", metavar="LINE",
                   help="exactly: delete function <name> and scheduler job <job> in <project>")
    _lock_flag(p)
    p.set_defaults(func=_rollback)
