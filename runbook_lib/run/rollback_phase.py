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


def delete_token(params: Params) -> str:
    """Return the line that confirms deleting the function and its scheduler job (not a pause)."""
    cf = params.cloud_function
    return f"delete function {cf.name} and scheduler job {cf.scheduler_job} in {params.project}"


def never_deployed(run_dir) -> str | None:
    """Return why the run's phase 03 left nothing to pause or delete (None: it may have deployed).

    A dry-run 03 only showed its plan; a 03 not run or skipped deployed nothing either. A 03
    that failed may have deployed part of the plan, so it counts as deployed.
    """
    from pathlib import Path

    from runbook_lib.run import manifest

    if not run_dir or not (Path(run_dir) / manifest.MANIFEST).exists():
        return None
    rec = next((r for k, r in manifest.latest_status(manifest.load(run_dir)).items()
                if k.startswith("03")), None)
    if rec is None:
        return "phase 03 is not part of this run: it deployed no function, so nothing is paused or deleted"
    if rec["status"] == "SKIPPED":
        return f"phase 03 was skipped in this run ({rec.get('reason')}): nothing deployed, nothing paused or deleted"
    fn = (rec.get("results") or {}).get("function")
    if isinstance(fn, dict) and not (fn.get("deployed") or fn.get("served")):
        return ("phase 03 of this run was a dry run (plan shown only): nothing was deployed, so the "
                "function and its scheduler job are not paused or deleted")
    return None


def rollback_function(params: Params, action: str = "pause", confirm: str = "", run_dir=None) -> dict:
    """Stop the daily function: pause its scheduler job, or delete job and function (confirmed).

    Skipped, and says so, when the run's phase 03 deployed nothing (a dry run); locally nothing
    is left running. Deleting needs `confirm` to be exactly `delete_token(params)`.
    """
    from runbook_lib.errors import ConfirmationRequired, ParamsError

    if action not in ("pause", "delete"):
        raise ParamsError("90_rollback", "function_action", f"is {action!r}", "use pause or delete")
    never = never_deployed(run_dir)
    if never or params.is_local:
        return {"ok": True, "action": "none",
                "detail": never or "local: phase 03 served the function only for its own test and "
                                   "stopped it; no scheduler exists locally"}
    if action == "delete" and confirm != delete_token(params):
        raise ConfirmationRequired(
            delete_token(params), confirm or None,
            fix=f"review what the run deployed, then pass --delete-function --confirm-delete "
                f"'{delete_token(params)}' (or pausing, the default, keeps both for a redeploy)")
    return _gcloud_rollback(params, ("delete_job", "delete") if action == "delete" else ("pause",), action)


def _gcloud_rollback(params: Params, steps: tuple[str, ...], action: str) -> dict:
    import tempfile
    from pathlib import Path

    from runbook_lib.platform import deploy_plan
    from runbook_lib.platform.cloud_function.bundle import build_bundle
    from runbook_lib.platform.cloud_function.gcloud import GcloudRunner

    with tempfile.TemporaryDirectory() as folder:
        bundle = build_bundle(Path(folder) / "bundle")
        plan, monitor = (
            deploy_plan.build_plan(params.env, section, params.function_config(), bundle)
            for section in (params.cloud_function, params.monitor_function)
        )
    runner = GcloudRunner(plan.project, plan.region)
    commands = [deploy_plan.rollback(plan, runner, step) for step in steps]
    detail = "; ".join("gcloud " + " ".join(c) for c in commands)
    # The daily monitor's job is paused like the cleanup's (never deleted: it only reads and
    # alerts); a run deployed before the monitor existed has none to pause.
    if deploy_plan.job_exists(monitor, runner):
        detail += "; gcloud " + " ".join(deploy_plan.rollback(monitor, runner, "pause"))
    else:
        detail += f"; monitor job {monitor.job} not deployed: nothing to pause"
    return {"ok": True, "action": action, "detail": detail}


def code_revert(run_dir=None) -> dict:
    """Return the code a run deployed, the previous deployment, and the commands that revert it.

    The range runs from the commit the previous deployed run of the environment recorded to the
    commit this run deployed (both in the run's manifest header), newest first; without a
    previous deployment only this commit is known. The commands are for a person, after review.
    """
    from pathlib import Path

    from runbook_lib.run import manifest
    from runbook_lib.run.checks import git_state

    header = manifest.load(run_dir)["header"] if run_dir and (Path(run_dir) / manifest.MANIFEST).exists() else {}
    head = (header.get("code") or {}).get("commit") or _phase00_head(run_dir)
    source = "recorded by this run" if head else "the current HEAD (the run recorded none)"
    head = head or git_state().head or "<commit>"
    prev = header.get("previous_deployment") or {}
    if prev.get("commit") == head:
        return {"deployed": head, "previous": prev, "commands": [],
                "detail": f"the previous deployment (run {prev['run_id']}) was the same commit: "
                          f"no code to revert"}
    target = f"{prev['commit']}..{head}" if prev.get("commit") else head
    return {"deployed": head, "previous": prev, "range": target,
            "commands": [f"git revert --no-edit {target}", "git push origin main"],
            "detail": (f"commits after {prev['commit'][:12]} (deployed by run {prev['run_id']}) up to "
                       f"{head[:12]} ({source}), newest first" if prev.get("commit") else
                       f"{head[:12]} ({source}) only: no earlier deployed run of this environment is "
                       f"recorded, so the range's start is unknown")}


def _phase00_head(run_dir) -> str | None:
    from runbook_lib.run.phase import read_results

    results = (read_results(run_dir, "00_preflight") or {}).get("results", {}) if run_dir else {}
    return (results.get("git") or {}).get("head")


def revert_text(revert: dict) -> str:
    """Return `code_revert`'s result as the commands a person types, with what they cover."""
    after = ("# then rerun phase 01 (code deployment) so the checks see the reverted code"
             if revert["commands"] else "# nothing to run")
    return "\n".join([f"# {revert['detail']}", *revert["commands"], after])


def stated_reason(reason: str, params: Params) -> str:
    """Return why this rollback runs, as the log and report will say it; none given is said too."""
    return reason.strip() or "not given (`runbook rollback --reason '...'` records why)"


def restore_all(wh, backups: list, overwrite: bool = False, journal=None) -> tuple[list, pd.DataFrame]:
    """Check every backup, then restore each; return the results and a table of them.

    A backup missing or short raises BackupMissingError before any table changes. By default
    each backup gives back the rows its cleanup deleted that the live table lacks; with
    `overwrite` each table is replaced by its earliest backup.
    """
    import pandas as pd

    from runbook_lib.platform.cleanup_restore import restore_backups

    results = restore_backups(wh, backups, overwrite=overwrite, journal=journal) if backups else []
    table = pd.DataFrame(
        [{"table": str(r.item.table), "backup": str(r.item.backup), "how": r.how, "rows": r.rows,
          "deleted": r.item.deleted, "backup_rows": r.item.backup_rows, "made_by": r.item.source,
          "missing_after": r.missing_after, "verified": r.verified} for r in results],
        columns=["table", "backup", "how", "rows", "deleted", "backup_rows", "made_by",
                 "missing_after", "verified"],
    )
    return results, table


def summary(man: dict) -> str | None:
    """Return a run's rollback in one line (rows restored, function, code, why), None if none.

    The log's Status and Issues and the report's verdict say it: a run whose latest 90 attempt
    SUCCEEDED is ROLLED BACK, whatever its phases did before.
    """
    from runbook_lib.run import manifest
    from runbook_lib.statuses import PhaseStatus

    r = next((r for k, r in manifest.latest_status(man).items() if k.startswith("90")), None)
    if not r or r["status"] != PhaseStatus.SUCCEEDED:
        return None
    res = r.get("results") or {}
    restored = res.get("restored") or []
    rows = sum(int(t.get("rows") or 0) for t in restored)
    fn, code = res.get("function") or {}, res.get("code_revert") or {}
    revert = f"revert {code['range']}" if code.get("range") else code.get("detail", "n/a")
    return (f"ROLLED BACK at {r.get('ended_at')} (rollback attempt {r.get('attempt')}): "
            f"{rows:,} rows restored to {len(restored)} table(s); function: "
            f"{fn.get('action', 'n/a')} ({fn.get('detail', 'not recorded')}); code: {revert}; "
            f"reason: {res.get('reason', 'not recorded')}")
