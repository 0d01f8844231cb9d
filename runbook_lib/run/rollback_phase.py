"""Phase 90's steps: which backups to restore, restoring them, stopping the function, the code revert.

Each function here would otherwise be logic in a notebook cell; keeping it here keeps
notebook 90 thin and the behaviour tested.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from runbook_lib.run.params import Params

if TYPE_CHECKING:
    import pandas as pd


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
        plan = deploy_plan.build_plan(
            params.env,
            params.cloud_function,
            params.function_config(),
            build_bundle(Path(folder) / "bundle"),
        )
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
