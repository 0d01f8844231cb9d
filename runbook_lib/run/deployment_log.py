"""The seed runbook's Deployment Log Template, filled from what the run measured.

Every line comes from the manifest (the phases' recorded results and checks); where a phase
did not run or did not record a value, the line says "n/a (reason)" instead of a placeholder.
Results are read defensively: a key a phase did not record is a reason, not a crash.
"""

from __future__ import annotations

from pathlib import Path

from runbook_lib.run import attempts, deploy_window, manifest, promotion, rollback_phase
from runbook_lib.statuses import PhaseStatus

LOG_NAME = "deployment_log.md"


def _box(ok: bool | None) -> str:
    return "[x]" if ok else "[ ]"


class _Run:
    """The manifest seen as the phases' latest records, looked up by number prefix."""

    def __init__(self, man: dict):
        self.header = man["header"]
        self.man = man
        self.latest = manifest.latest_status(man)

    def rec(self, prefix: str) -> dict | None:
        return next((r for k, r in self.latest.items() if k.startswith(prefix)), None)

    def why_not(self, prefix: str, key: str | None = None) -> str | None:
        """Return why a phase's value is unavailable (None when it is available)."""
        r = self.rec(prefix)
        if r is None:
            return f"n/a (no {prefix}* phase in this run)"
        if r["status"] == PhaseStatus.SKIPPED:
            return f"n/a ({r['phase']} skipped: {r.get('reason')})"
        if key and key not in (r.get("results") or {}):
            return f"n/a ({r['phase']} {r['status'].lower()} without recording {key})"
        return None

    def get(self, prefix: str, key: str, default=None):
        r = self.rec(prefix)
        return ((r or {}).get("results") or {}).get(key, default)

    def ok(self, prefix: str) -> bool:
        r = self.rec(prefix)
        return bool(r and r["status"] == PhaseStatus.SUCCEEDED)


def _approval(run: _Run, *words: str) -> dict | None:
    # Sign-offs are taken before the deployment (00) and after it (06: verified, team trained).
    signed = (run.get("00", "approvals", []) or []) + (run.get("06", "approvals", []) or [])
    return next((a for a in signed if any(w in str(a.get("item", "")).lower() for w in words)), None)


def _signer(entry: dict) -> str:
    """Return the typed name of a sign-off with the identity authenticated when it was given."""
    who = entry.get("identity")
    return f"{entry['name']} (authenticated as {who})" if who else str(entry["name"])


def _check_named(run: _Run, prefix: str, *words: str) -> dict | None:
    r = run.rec(prefix) or {}
    return next(
        (c for c in r.get("checks", []) if any(w in c["check"].lower() for w in words)), None
    )


def _pre_deployment(run: _Run) -> list[str]:
    review = _approval(run, "review")
    review_line = (
        f"signed by {_signer(review)} at {review['at']}"
        if review
        else run.why_not("00", "approvals") or "n/a (no code-review sign-off recorded)"
    )
    passed, failed = run.get("01", "tests_passed"), run.get("01", "tests_failed")
    tests = (
        f"{passed} passed, {failed} failed"
        if passed is not None
        else run.why_not("01", "tests_passed")
    )
    perm = _check_named(run, "00", "permission", "reachable", "rights")
    perm_line = (
        (f"{perm['check']} ({perm['detail']})" if perm["ok"]
         else f"{perm['check']} FAILED ({perm['detail']})")
        if perm
        else run.why_not("00") or "n/a (00_preflight ran no permissions check)"
    )
    return [
        f"- {_box(review)} Code review completed: {review_line}",
        f"- {_box(passed is not None and not failed)} All tests passing: {tests}",
        f"- {_box(perm and perm['ok'])} Permissions verified: {perm_line}",
    ]


def _deployment(run: _Run) -> list[str]:
    safeguards = run.get("01", "safeguards") or []
    present = sum(bool(s.get("present")) for s in safeguards)
    code = (
        f"{present}/{len(safeguards)} safeguards present in the deployed code, "
        f"{run.get('01', 'compiled', 'n/a')} files byte-compiled"
        if safeguards
        else run.why_not("01", "safeguards") or "n/a (no safeguards recorded)"
    )
    deleted = run.get("02", "rows_deleted")
    cleanup = _cleanup_line(run)
    fn = run.get("03", "function")
    fn_line = _function_line(fn) if isinstance(fn, dict) else (
        run.why_not("03", "function") or "n/a (no function recorded)"
    )
    cov = run.get("04", "coverage") or []
    integ = (
        "; ".join(
            f"{c.get('game_date')}: {c.get('actual')}/{c.get('expected')} "
            f"({c.get('coverage_pct')}%)"
            for c in cov
        )
        if cov
        else run.why_not("04", "coverage") or "n/a (no coverage recorded)"
    )
    return [
        f"- {_box(run.ok('01') and safeguards and present == len(safeguards))} Code deployed: {code}",
        f"- {_box(run.ok('02') and isinstance(deleted, int))} Data cleanup completed: {cleanup}",
        f"- {_box(run.ok('03'))} Cloud Function deployed: {fn_line}",
        f"- {_box(run.ok('04'))} Integration tests passed: {integ}",
    ]


def _cleanup_line(run: _Run) -> str:
    """Return what phase 02 did: its latest attempt, and every attempt when there were more."""
    deleted = run.get("02", "rows_deleted")
    tables = run.get("02", "tables") or []
    dry = " (dry run: nothing deleted)" if run.get("02", "dry_run") else ""
    backed_up = [t for t in tables if t.get("backup")]
    verified = all(t.get("verified") for t in backed_up)
    backups = (f"{len(backed_up)} backup(s) {'verified' if verified else 'NOT verified'}"
               if backed_up else "no backup needed (nothing stale)")
    latest = (
        f"{deleted:,} records deleted from {len(tables)} table(s), {backups}, "
        f"cutoff {run.get('02', 'cutoff')}{dry}"
        if isinstance(deleted, int)
        else run.why_not("02", "rows_deleted")
    )
    tries = attempts.phase_attempts(run.man, run.rec("02")["phase"]) if run.rec("02") else []
    if len(tries) < 2 and all(r["status"] == PhaseStatus.SUCCEEDED for r in tries):
        return latest
    made = attempts.run_backups(run.man)
    return (
        f"{'; '.join(attempts.attempt_phrase(r) for r in tries)}; {len(made)} backup(s) made by all "
        f"attempts ({', '.join(b['backup'].rsplit('.', 1)[-1] for b in made) or 'none'}), each "
        f"restored by `runbook rollback`. Latest attempt: {latest}"
    )


def _function_line(fn: dict) -> str:
    how = "served locally and triggered" if "served" in fn else (
        "deployed and triggered" if fn.get("deployed") else "planned only (dry run)")
    audit = fn.get("audit_row") or {}
    rows = fn.get("rows_deleted")
    return (f"{how}: {rows if rows is not None else 'n/a'} records deleted by the scheduled run, "
            f"audit row {audit.get('status', 'missing')} (cutoff {audit.get('cutoff_date', 'n/a')}, "
            f"run {audit.get('run_id', 'n/a')})")


def _post_deployment(run: _Run) -> list[str]:
    cov = run.get("04", "coverage") or []
    full = bool(cov) and all(float(c.get("coverage_pct") or 0) >= 100 for c in cov)
    first = (
        f"{len(cov)} date(s) backfilled, {'all at 100%' if full else 'not all at 100%'}"
        if cov
        else run.why_not("04", "coverage") or "n/a (no coverage recorded)"
    )
    stopped = run.get("04", "preflight_stopped")
    lines = run.get("04", "log_lines") or []
    found = sum(bool(x.get("found")) for x in lines)
    alerts, rows = run.get("05", "alerts_sent"), run.get("05", "dashboard_rows")
    monitor = (
        f"dashboard {rows} rows, {alerts} alert(s) sent to {run.get('05', 'alert_channel')}"
        if rows is not None
        else run.why_not("05", "dashboard_rows")
    )
    return [
        f"- {_box(run.ok('04') and full)} First backfill successful: {first}",
        f"- {_box(lines and found == len(lines))} Coverage validation working: "
        + (
            f"{found}/{len(lines)} expected log lines seen"
            if lines
            else run.why_not("04", "log_lines") or "n/a (no log lines recorded)"
        ),
        f"- {_box(stopped)} Pre-flight check working: "
        + (
            ("stopped the replayed incident date" if stopped else "did NOT stop the incident date")
            if stopped is not None
            else run.why_not("04", "preflight_stopped")
        ),
        f"- {_box(run.ok('05'))} Monitoring active: {monitor}",
    ]


def _issues(run: _Run) -> list[str]:
    out = [f"- {r['phase']} attempt {r.get('attempt')} {r['status']}: {r.get('reason')}"
           for r in run.man["records"] if r["status"] == PhaseStatus.INTERRUPTED]
    for name, r in run.latest.items():
        if r["status"] == PhaseStatus.FAILED:
            out.append(f"- {name} FAILED: {r.get('reason')}")
        for c in r.get("checks", []):
            if not c["ok"]:
                out.append(f"- {name}: check {c['check']} failed {c.get('detail', '')}".rstrip())
    window = run.get("00", "deployment_window") or {}
    if window.get("override_reason"):
        out.append(f"- deployment window overridden: {window.get('closed_because')} at "
                   f"{window.get('at')}; reason: {window['override_reason']}")
    back = rollback_phase.summary(run.man)
    if back:
        out.insert(0, f"- {back}")
    gate = run.header.get("promotion") or {}
    if gate.get("state") == "skipped":
        out.append(f"- promotion gate skipped: no VERIFIED {gate['gated_by']} run of this commit "
                   f"was required; reason: {gate['reason']}")
    dirty = (run.get("00", "git") or {}).get("dirty") or []
    if dirty:
        out.append(f"- deployed from a tree with {len(dirty)} uncommitted file(s) (allowed only on "
                   f"local): {_files(dirty)}")
    return out or ["None"]


def _cutoffs(run: _Run) -> list[str]:
    """Return which cutoff phases 02 and 03 used, in words, and why they differ by a day."""
    cleanup, fn = run.rec("02"), run.get("03", "function")
    if cleanup is None or run.why_not("02", "cutoff"):
        return [f"- Phase 02: {run.why_not('02', 'cutoff') or 'n/a'}"]
    cut, today = run.get("02", "cutoff"), (cleanup.get("parameters") or {}).get("today")
    lines = [f"- Phase 02 (the one-off cleanup, today {today}): cutoff {cut} = today minus the TTL; "
             f"rows dated before {cut} were deleted, rows dated on {cut} were kept."]
    audit = (fn or {}).get("audit_row") or {} if isinstance(fn, dict) else {}
    if not audit.get("cutoff_date"):
        return [*lines, f"- Phase 03: {run.why_not('03', 'function') or 'its scheduled run recorded no cutoff (a dry run deploys and triggers nothing)'}."]
    return [
        *lines,
        f"- Phase 03 (the function's scheduled run, simulated for the next day's 04:00): cutoff "
        f"{audit['cutoff_date']} = that day minus the same TTL; it deleted "
        f"{_count(fn.get('rows_deleted'))} rows, the ones dated {cut} that phase 02 kept.",
        f"- Why two cutoffs: each cleanup computes its cutoff once, from its own day. The function "
        f"runs the day after the deployment, so its cutoff is one day later and {cut} is the first "
        f"day it removes; phase 05's nightly backfill of {cut} then finds no UPCG for that date and "
        f"builds its context from PGS (the fallback), as designed.",
    ]


def _contacts(run: _Run) -> list[str]:
    """Return the seed's Support Contacts, with the names the run's params held when it started."""
    h = run.header
    named = h.get("contacts") or "n/a (this run's header holds no contacts: an older run)"
    where = f"outputs/{h['env']}/{h['run_id']}"
    return [
        f"- Whom to call: {named}",
        f"- Deployment issues: this log, the failed phase's notebook, `runbook verify {where}`",
        f"- Data issues: `runbook rollback --run {where}` checks every backup before restoring",
        "- Monitoring issues: `runbook monitor`, the coverage dashboard of phase 05",
    ]


def _window_line(run: _Run) -> str:
    window = run.get("00", "deployment_window")
    return deploy_window.detail(window) if window else (
        run.why_not("00", "deployment_window") or "n/a (phase 00 recorded no window)")


def _count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _files(status_lines: list[str], most: int = 5) -> str:
    names = [line[3:] if len(line) > 3 else line for line in status_lines]  # drop "XY " of git status
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _code_line(run: _Run) -> str:
    git = run.get("00", "git") or {}
    if not git.get("is_repo"):
        return run.why_not("00", "git") or "n/a (phase 00 recorded no git state)"
    dirty = git.get("dirty") or []
    state = "clean tree" if not dirty else f"{len(dirty)} uncommitted file(s): {_files(dirty)}"
    return f"commit {git.get('head')} on {git.get('branch')}, {state}"


def _notes(run: _Run) -> list[str]:
    rows = ["| phase | status | seconds | reason |", "|---|---|---|---|"]
    for r in manifest.summary_rows({"records": list(run.latest.values())}):
        rows.append(f"| {r['phase']} | {r['status']} | {r['seconds'] or ''} | {r['reason']} |")
    crit = run.get("06", "success_criteria") or []
    if crit:
        rows += ["", "Success criteria:", "", "| criterion | met | evidence |", "|---|---|---|"]
        rows += [
            f"| {c.get('criterion')} | {'yes' if c.get('met') else 'NO'} | {c.get('evidence', '')} |"
            for c in crit
        ]
    else:
        rows += [
            "",
            f"Success criteria: {run.why_not('06', 'success_criteria') or 'n/a (none recorded)'}",
        ]
    windows = run.get("06", "checks_by_window") or []
    if windows:
        rows += ["", "Post-deployment checks (phase 06; PENDING waits for later runs: "
                 f"`runbook resume outputs/{run.header['env']}/{run.header['run_id']} --rerun 06` a day later updates them):", "", "| window | check | status | evidence |",
                 "|---|---|---|---|"]
        rows += [f"| {w.get('window')} | {w.get('check')} | {w.get('status')} | {w.get('evidence', '')} |"
                 for w in windows]
    restored = run.get("90", "restored") or []
    if restored:
        rows += [
            "",
            "Rollback: "
            + "; ".join(
                f"{t.get('table')} restored from {t.get('backup')} ({_count(t.get('rows'))} rows "
                f"{'put back' if t.get('how') != 'overwrite' else 'after overwriting'}, "
                f"{'verified' if t.get('verified') else 'NOT verified'})"
                for t in restored
            ),
        ]
    return rows


def people_and_code(man: dict) -> dict[str, str]:
    """Return who deployed, who verified and which code, as the log's header and sign-off say."""
    run = _Run(man)
    verifier = _approval(run, "verif", "sign")
    return {
        "deployed_by": run.get("00", "deployed_by") or run.why_not("00", "deployed_by") or "n/a",
        "verified_by": _signer(verifier) if verifier else "n/a (no verification sign-off recorded)",
        "code": _code_line(run),
    }


def render(run_dir: Path) -> str:
    """Return the filled deployment log of a run as Markdown."""
    man = manifest.load(run_dir)
    run = _Run(man)
    h = run.header
    who = people_and_code(man)
    deployed_by, verified_by = who["deployed_by"], who["verified_by"]
    date = h["created_at"][:16].replace("T", " ") + " UTC"
    parts = [
        "# Deployment Log - Backfill Improvements",
        "",
        f"**Date:** {date}",
        f"**Deployed By:** {deployed_by}",
        f"**Environment:** {h['env']} (run {h['run_id']})",
        *([f"**Status:** {rollback_phase.summary(man)}"] if rollback_phase.summary(man) else []),
        f"**Code:** {who['code']}",
        f"**Promotion:** {promotion.log_line(h)}",
        f"**Deployment window:** {_window_line(run)}",
        "",
        "## Pre-Deployment",
        *_pre_deployment(run),
        "",
        "## Deployment",
        *_deployment(run),
        "",
        "## Post-Deployment",
        *_post_deployment(run),
        "",
        "## Issues Encountered",
        *_issues(run),
        "",
        "## Cutoffs",
        *_cutoffs(run),
        "",
        "## Notes",
        *_notes(run),
        "",
        "## Support Contacts",
        *_contacts(run),
        "",
        "## Sign-Off",
        f"Deployed: {deployed_by}",
        f"Verified: {verified_by}",
        f"Date: {h['created_at'][:10]}",
        "",
    ]
    return "\n".join(parts)


def write(run_dir: Path) -> Path:
    """Write `deployment_log.md` into the run dir; return its path."""
    path = Path(run_dir) / LOG_NAME
    path.write_text(render(run_dir))
    return path
