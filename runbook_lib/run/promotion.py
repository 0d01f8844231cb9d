"""The promotion gate and the deployed-code history of an environment's runs.

The seed's checklist asks for "Staging deployment successful" before production. Here a run of
an environment whose params name `promotion.gated_by` (prod names staging) refuses to start
unless a run of that environment deployed the same commit, verifies (`runbook verify`: the
chain, every file, completeness, the anchor) and every phase of it SUCCEEDED, and was not rolled
back. `promotion.skip_staging_reason` is the only way past; it is recorded in the manifest
header and the deployment log. Each run also records its commit and the commit the previous
run of its environment deployed, so a rollback can revert the whole range.
"""

from __future__ import annotations

from pathlib import Path

from runbook_lib.errors import PromotionRefusedError
from runbook_lib.run import manifest
from runbook_lib.run.display import facts_table
from runbook_lib.run.params import Params
from runbook_lib.statuses import PhaseStatus

ROLLBACK_PREFIX = "90_"
CODE_PHASE = "01_"  # a run deployed its code when its phase 01 SUCCEEDED


def run_code(man: dict) -> str | None:
    """Return the commit a run deployed: its header's, else the one its phase 00 recorded."""
    code = man["header"].get("code") or {}
    if code.get("commit"):
        return code["commit"]
    pre = next((r for k, r in manifest.latest_status(man).items() if k.startswith("00")), None)
    return (((pre or {}).get("results") or {}).get("git") or {}).get("head")


def _runs(env_dir: Path) -> list[tuple[Path, dict]]:
    """Return the readable runs under `outputs/<env>/`, newest first (run ids sort by time)."""
    found = []
    for folder in sorted(Path(env_dir).glob("*/"), reverse=True):
        try:
            found.append((folder, manifest.load(folder)))
        except Exception:  # noqa: BLE001 - not a run (standalone results, a broken copy): skip it
            continue
    return found


def _unfit(man: dict) -> str | None:
    """Return why a run of the right commit does not count as a successful deployment."""
    latest = manifest.latest_status(man)
    if any(k.startswith(ROLLBACK_PREFIX) for k in latest):
        return "it was rolled back"
    planned = man["header"].get("planned") or []
    bad = [f"{k} {r['status']}" for k, r in latest.items() if r["status"] != PhaseStatus.SUCCEEDED]
    bad += [f"{p} has no record" for p in planned if p not in latest]
    return f"not every phase SUCCEEDED ({', '.join(bad)})" if bad or not latest else None


def find_verified(env_dir: Path, commit: str) -> tuple[dict | None, list[str]]:
    """Return the newest VERIFIED, fully SUCCEEDED run of `commit` under env_dir, and why others failed."""
    rejected, other_commits = [], 0
    for folder, man in _runs(env_dir):
        if run_code(man) != commit:
            other_commits += 1
            continue
        why = _unfit(man)
        if why is None:
            checked = manifest.verify(folder)
            if checked.ok:
                return _named(folder, man), rejected
            why = f"`runbook verify` says {checked.verdict}: {(checked.problems or checked.missing or ['?'])[0]}"
        rejected.append(f"run {man['header']['run_id']}: {why}")
    if other_commits:
        rejected.append(f"{other_commits} run(s) of other commits")
    return None, rejected


def _named(folder: Path, man: dict) -> dict:
    h = man["header"]
    return {
        "run_id": h["run_id"],
        "commit": run_code(man),
        "at": h.get("created_at"),
        "run_dir": str(folder),
    }


def gate(params: Params, runs_root: Path, commit: str) -> dict:
    """Return the gate's record for the manifest header; raise PromotionRefusedError when shut.

    `runs_root` is the folder holding `<env>/<run_id>/` (outputs/ by default).
    """
    cfg = params.promotion
    if cfg.gated_by is None:
        return {
            "state": "not gated",
            "detail": f"{params.env} needs no earlier run (params promotion.gated_by is null)",
        }
    if cfg.skip_staging_reason:
        return {
            "state": "skipped",
            "gated_by": cfg.gated_by,
            "reason": cfg.skip_staging_reason,
            "detail": f"no VERIFIED {cfg.gated_by} run required: skipped on purpose, "
            f"reason: {cfg.skip_staging_reason}",
        }
    found, rejected = find_verified(Path(runs_root) / cfg.gated_by, commit)
    if found is None:
        raise PromotionRefusedError(params.env, cfg.gated_by, commit, rejected)
    return {
        "state": "passed",
        "gated_by": cfg.gated_by,
        **found,
        "detail": f"{cfg.gated_by} run {found['run_id']} of commit {commit[:12]} (started "
        f"{found['at']}) verifies and every phase SUCCEEDED",
    }


def previous_deployment(env_dir: Path, commit: str | None) -> dict | None:
    """Return the newest earlier run of this environment that deployed code: its id and commit.

    A run deployed code when its phase 01 SUCCEEDED and it was not rolled back since.
    """
    for _, man in _runs(env_dir):
        latest = manifest.latest_status(man)
        deployed = any(
            k.startswith(CODE_PHASE) and r["status"] == PhaseStatus.SUCCEEDED
            for k, r in latest.items()
        )
        if deployed and not any(k.startswith(ROLLBACK_PREFIX) for k in latest) and run_code(man):
            h = man["header"]
            return {"run_id": h["run_id"], "commit": run_code(man), "at": h.get("created_at")}
    return None


def recorded(run_dir) -> dict:
    """Return what a run's header recorded of its gate (phase 00 shows it); standalone: none."""
    if not run_dir or not (Path(run_dir) / manifest.MANIFEST).exists():
        return {"state": "standalone", "detail": "a standalone phase: no run, so no promotion gate"}
    return manifest.load(run_dir)["header"].get("promotion") or {
        "state": "not recorded",
        "detail": "this run's header holds no promotion gate (an older run)",
    }


def facts(gate_record: dict):
    """Return the gate's record as a facts table: state, the gating run, or the skip reason."""
    keys = ("state", "gated_by", "run_id", "commit", "at", "run_dir", "reason", "detail")
    return facts_table([(k, gate_record[k]) for k in keys if gate_record.get(k)], "promotion gate")


def log_line(header: dict) -> str:
    """Return the deployment log's promotion line: the gating run, the skip and its reason, or none."""
    gate = header.get("promotion") or {}
    if gate.get("state") == "passed":
        return (
            f"{gate['gated_by']} run {gate['run_id']} of commit {gate['commit'][:12]} "
            f"(started {gate['at']}) verifies and every phase SUCCEEDED"
        )
    if gate.get("state") == "skipped":
        return f'{gate["gated_by"]} run NOT required: skipped with the reason "{gate["reason"]}"'
    return gate.get("detail") or "n/a (this run's header holds no promotion gate)"
