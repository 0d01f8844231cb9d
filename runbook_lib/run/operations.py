"""Where two library parts meet inside a phase: small steps the notebooks call by name.

Each function here would otherwise be logic in a notebook cell (a try/except, a branch on the
environment); keeping it here keeps the notebooks thin and the behaviour tested.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from runbook_lib.errors import PreflightFailedError
from runbook_lib.run.params import Params

if TYPE_CHECKING:
    import pandas as pd


def resolve_dry_run(params: Params, dry_run: bool | None) -> bool:
    """Return the phase's dry-run setting: the parameter if given, else the params default."""
    return params.cleanup.dry_run if dry_run is None else bool(dry_run)


def expect_preflight_stop(wh, params: Params, start: dt.date, end: dt.date, run_id: str | None = None):
    """Run the backfill on `start`..`end` and return the PreflightFailedError it must raise.

    Returns None when the pre-flight did not stop the run (which the phase then reports as a
    failed check; the backfill will have run its validation).
    """
    from runbook_lib.platform.backfill import run_backfill

    try:
        run_backfill(wh, params, start, end, run_id=run_id, resume=False)
    except PreflightFailedError as e:
        return e
    return None


# The lines the seed runbook's Phase 4 tells operators to look for, in the fact sheet's words.
EXPECTED_LOG_LINES = (
    "PRE-FLIGHT COVERAGE CHECK",
    "📊 Data source check for",
    "upcoming_player_game_context (UPCG):",
    "player_game_summary (PGS):",
    "No upcoming_player_game_context for",
    "🔄 TRIGGERING FALLBACK for",
    "UPCG is empty",
    "⚠️  PRE-FLIGHT CHECK FOUND ISSUES",
    "❌ Pre-flight check failed. Aborting backfill.",
    "❌ INCOMPLETE DATA DETECTED for",
    "UPCG has incomplete data",
    "✅ Coverage validation passed: 187/187 players (100.0%)",
    "✅ Coverage validation passed: 175/175 players (100.0%)",
)


def expected_lines(captured: list[str], expected: tuple[str, ...] = EXPECTED_LOG_LINES):
    """Return a table of each expected line (a substring) and whether it appeared."""
    import pandas as pd

    return pd.DataFrame(
        [{"line": e, "found": any(e in line for line in captured)} for e in expected],
        columns=["line", "found"],
    )


def nightly_backfill(wh, params: Params, today: dt.date, days: int, run_id: str | None = None):
    """Run the scheduled backfill over the last `days` days before `today`; None when days is 0.

    On `local` there is no nightly scheduler, so the monitoring phase runs the backfill the
    schedule would have run, with every safeguard on, to give the dashboard real rows.
    """
    if days <= 0:
        return None
    from runbook_lib.platform.backfill import run_backfill

    start, end = today - dt.timedelta(days=days), today - dt.timedelta(days=1)
    return run_backfill(wh, params, start, end, run_id=run_id, resume=False)


def backups_to_restore(run_dir, params: Params, given: list | None = None) -> list:
    """Return the backups to restore: the given ones, else every one the run's attempts made.

    Each entry (as `runbook rollback` passes them) names table and backup, and the backup's
    recorded rows, the cleanup's cutoff and the rows it deleted. Names are parsed like
    `runbook restore` parses them: a backup of another project is refused.
    """
    from runbook_lib.platform.cleanup_restore import BackupToRestore
    from runbook_lib.warehouse.ids import parse_table_id

    entries = given or _made_in(run_dir)
    dataset = params.datasets["analytics"]

    def parse(text: str):
        return parse_table_id(text, params.project, dataset, "backups")

    return [
        BackupToRestore(
            parse(e["table"]), parse(e["backup"]), e.get("backup_rows"),
            dt.date.fromisoformat(e["cutoff"]) if e.get("cutoff") else None, e.get("deleted"),
            f"attempt {e['attempt']}" if e.get("attempt") else "",
        )
        for e in entries
    ]


def _made_in(run_dir) -> list[dict]:
    """Return the backups recorded in a run dir: its manifest's attempts, else 02's results."""
    from pathlib import Path

    from runbook_lib.run import attempts, manifest
    from runbook_lib.run.phase import read_results

    if (Path(run_dir) / manifest.MANIFEST).exists():
        return attempts.run_backups(manifest.load(run_dir))
    results = (read_results(run_dir, "02_data_cleanup") or {}).get("results", {})
    return attempts.result_backups(results)


def rollback_function(params: Params, action: str = "pause") -> dict:
    """Stop the daily cleanup function: pause its scheduler on GCP; locally nothing is left running."""
    if params.is_local:
        return {"ok": True, "action": "none",
                "detail": "local: phase 03 served the function only for its own test and stopped it; "
                          "no scheduler exists locally"}
    import tempfile
    from pathlib import Path

    from runbook_lib.platform import deploy_plan
    from runbook_lib.platform.cloud_function.bundle import build_bundle
    from runbook_lib.platform.cloud_function.gcloud import GcloudRunner

    with tempfile.TemporaryDirectory() as folder:
        plan = deploy_plan.build_plan(params, build_bundle(Path(folder) / "bundle"))
    command = deploy_plan.rollback(plan, GcloudRunner(plan.project, plan.region), action)
    return {"ok": True, "action": action, "detail": "gcloud " + " ".join(command)}


def code_revert_guidance(run_dir=None) -> str:
    """Return the commands that revert the code a run deployed, for a person to run after review.

    The commit is the one phase 00 of that run recorded; without it, the current HEAD.
    """
    from runbook_lib.run.checks import git_state
    from runbook_lib.run.phase import read_results

    recorded = ((read_results(run_dir, "00_preflight") or {}).get("results", {}).get("git") or {}) if run_dir else {}
    head = recorded.get("head") or git_state().head or "<commit>"
    source = "recorded by phase 00 of this run" if recorded.get("head") else "the current HEAD"
    return (f"# the commit deployed ({source}): {head}\ngit revert {head}\ngit push origin main\n"
            f"# then rerun phase 01 (code deployment) so the checks see the reverted code")


def apply_cleanup(phase, plan, tokens: list[str], dry_run: bool):
    """Apply a confirmed plan in phase 02: backups named by run and attempt, steps journaled."""
    from runbook_lib.platform import cleanup

    return cleanup.apply_cleanup(phase.wh, phase.tables, plan, confirm=tokens, dry_run=dry_run,
                                 run_id=phase.backup_suffix, trigger="runbook",
                                 journal=phase.journal)


def cleanup_records(result) -> dict:
    """Return what phase 02 records: per-table outcome, total deleted, and the backups made."""
    import pandas as pd

    return {
        "tables": pd.DataFrame([{"table": t.table.short, "previewed": t.previewed, "deleted": t.deleted,
                                 "backup": str(t.backup_table or ""), "backup_rows": t.backup_rows,
                                 "verified": t.verified} for t in result.tables]),
        "rows_deleted": result.total_deleted,
        "backups": [{"table": str(t.table), "backup": str(t.backup_table),
                     "backup_rows": t.backup_rows, "deleted": t.deleted,
                     "cutoff": result.plan.cutoff.isoformat()}
                    for t in result.tables if t.backup_table],
    }


def cleanup_checks(plan, result, after) -> list[tuple[str, bool, str]]:
    """Return phase 02's checks (name, ok, detail) for a plan, what applying it did, and after."""
    if result.dry_run:
        return [("dry run changed nothing", after.total_stale == plan.total_stale,
                 f"{after.total_stale:,} stale rows before and after; would delete {plan.total_stale:,}")]
    stale_tables = [t for t in result.tables if t.previewed]
    return [
        ("rows deleted equal rows previewed", result.total_deleted == plan.total_stale,
         f"{result.total_deleted:,} deleted of {plan.total_stale:,} previewed"),
        ("every table with stale rows has a verified backup",
         all(t.backup_table and t.backup_rows is not None for t in stale_tables),
         ", ".join(result.backups) or "no stale rows, so no backup needed"),
        ("verification: nothing older than the cutoff remains, newer rows intact",
         all(t.verified for t in stale_tables), result.status),
        ("no stale rows remain (the seed's Step 2.4 query)", after.total_stale == 0,
         f"{after.total_stale:,} stale rows now"),
    ]


def confirmation_record(
    plan, given, tokens: list[str], dry_run: bool, source: str = "", phase=None
) -> dict:
    """Return what the archive keeps of a confirmation: expected, given, where, how, who, when.

    `given` is the form's Confirmation (who answered it, when and how) or the parameter's text.
    """
    import datetime as _dt

    from runbook_lib.platform.cleanup_confirm import AUTO, SEPARATOR, confirmation_line
    from runbook_lib.run.interact import Confirmation, who

    holder = given if isinstance(given, Confirmation) else None
    text = holder.value if holder else (given or "")
    how = "dry run: no confirmation needed" if dry_run else (
        "auto (local: the previewed plan accepted)" if text.strip() == AUTO
        else (holder.how if holder and holder.how else f"typed ({source or 'given'})"))
    return {"expected": confirmation_line(plan), "given": SEPARATOR.join(tokens), "how": how,
            "source": source, "by": (holder.by if holder else None) or f"{who(phase)} ({source or 'parameter'})",
            "at": (holder.at if holder else None) or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}


def restore_all(wh, backups: list, overwrite: bool = False, journal=None) -> tuple[list, pd.DataFrame]:
    """Check every backup, then restore each; return the results and a table of them.

    A backup missing or short raises BackupMissingError before any table changes. By default
    each backup gives back the rows its cleanup deleted that the live table lacks; with
    `overwrite` each table is replaced by its earliest backup.
    """
    import pandas as pd

    from runbook_lib.platform.cleanup_restore import restore_backups

    results = restore_backups(wh, backups, overwrite=overwrite, journal=journal)
    table = pd.DataFrame(
        [{"table": str(r.item.table), "backup": str(r.item.backup), "how": r.how, "rows": r.rows,
          "deleted": r.item.deleted, "backup_rows": r.item.backup_rows, "made_by": r.item.source,
          "missing_after": r.missing_after, "verified": r.verified} for r in results],
        columns=["table", "backup", "how", "rows", "deleted", "backup_rows", "made_by",
                 "missing_after", "verified"],
    )
    return results, table
