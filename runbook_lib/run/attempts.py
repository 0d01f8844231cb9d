"""Every attempt of every phase, recorded: killed ones found and recorded INTERRUPTED, and
every backup any attempt made, for the rollback.

A runner killed with SIGKILL writes no record of the attempt it was running, but the attempt's
notebook (papermill saves it cell by cell), results file and journal are on disk. The next
runner entry on that run (`resume`, `rollback`) calls `recover` before anything
else: each attempt on disk with no record gets an INTERRUPTED record carrying its partial
results and what its journal says it did. The attempt after it is numbered past it.
"""

from __future__ import annotations

import json
from pathlib import Path

from runbook_lib import secrets
from runbook_lib.clock import now_iso
from runbook_lib.run import journal, manifest
from runbook_lib.run.archive import (
    JOURNAL,
    RESULTS,
    attempt_file,
    attempts_on_disk,
    finalise,
    scrub_phase,
)
from runbook_lib.run.params import Params
from runbook_lib.statuses import PhaseStatus

ROLLBACK_KIND = "rollback"


def journal_summary(run_dir: Path, phase: str, attempt: int) -> dict | None:
    """Return what an attempt's journal says it did, or None when it kept no journal."""
    path = Path(run_dir) / attempt_file(phase, attempt, JOURNAL)
    if not path.exists():
        return None
    return {"file": attempt_file(phase, attempt, JOURNAL), **journal.summarize(journal.read(path))}


def unrecorded(run_dir: Path, phases: list[str]) -> list[tuple[str, int]]:
    """Return (phase, attempt) of every attempt on disk that no manifest record covers."""
    recorded = {(r.get("phase"), r.get("attempt")) for r in manifest.load(run_dir)["records"]}
    return [(p, n) for p in phases for n in attempts_on_disk(run_dir, p) if (p, n) not in recorded]


def recover(
    run_dir: Path, phases: list[str], rollback: str, params: Params, overrides: dict, progress
) -> list[dict]:
    """Chain an INTERRUPTED record for each attempt of `phases` on disk with no record.

    Then re-archive the run (finalise), so the killed attempts' results and journals are
    covered by the chain. `rollback` names the phase whose records are of kind rollback;
    `progress` is told of each record. Returns the stored records.
    """
    found = []
    for phase, attempt in unrecorded(run_dir, [*phases, rollback]):
        kind = ROLLBACK_KIND if phase == rollback else "phase"
        rec = manifest.append(run_dir, _interrupted(run_dir, phase, attempt, kind, params))
        progress({"event": "interrupted", "phase": phase, "attempt": attempt,
                  "reason": rec["reason"]})
        found.append(rec)
    if found:
        finalise(run_dir, params, overrides)
    return found


def _interrupted(run_dir: Path, phase: str, attempt: int, kind: str, params: Params) -> dict:
    nb_name = attempt_file(phase, attempt)
    nb = Path(run_dir) / nb_name
    parameters = _notebook_parameters(nb)
    # Redacted as a finished attempt's files are: the runner never got to scrub them.
    scrubbed = scrub_phase(run_dir, phase, nb, parameters, params, attempt)
    doc = _read_json(Path(run_dir) / attempt_file(phase, attempt, RESULTS)) or {}
    summary = journal_summary(run_dir, phase, attempt)
    said = journal.describe(summary) if summary else "it kept no journal"
    return {
        "phase": phase,
        "kind": kind,
        "attempt": attempt,
        "status": PhaseStatus.INTERRUPTED,
        "reason": (
            f"killed before its outcome was recorded (its runner or kernel died; found "
            f"{now_iso()}); {said}"
        ),
        "started_at": doc.get("started_at"),
        "ended_at": None,
        "seconds": None,
        "parameters": secrets.redact_mapping(parameters),
        "results": doc.get("results", {}),
        "checks": doc.get("checks", []),
        "notebook": nb_name if nb.exists() else None,
        "journal": summary,
        "secrets_redacted": scrubbed,
    }


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _notebook_parameters(nb: Path) -> dict:
    """Return the parameters papermill stored in a (partial) executed notebook."""
    doc = _read_json(nb) or {}
    return dict(doc.get("metadata", {}).get("papermill", {}).get("parameters") or {})


def attempt_phrase(rec: dict) -> str:
    """Return what one attempt of the cleanup did, e.g. "8,782 rows deleted by attempt 1, interrupted"."""
    n, status = rec.get("attempt"), rec["status"].lower()
    results, journal = rec.get("results") or {}, rec.get("journal") or {}
    deleted = results.get("rows_deleted")
    deleted = deleted if isinstance(deleted, int) else journal.get("rows_deleted")
    if journal.get("unknown"):
        return (
            f"attempt {n}, {status}, died around the delete of {', '.join(journal['unknown'])} "
            f"(not journaled; {deleted or 0:,} rows deleted before it)"
        )
    if deleted:
        return f"{deleted:,} rows deleted by attempt {n}, {status}"
    if results.get("dry_run"):
        return f"attempt {n} was a dry run, {status}"
    if journal.get("backups"):
        return f"attempt {n} backed up {len(journal['backups'])} table(s) and deleted nothing, {status}"
    if deleted == 0 and status == "succeeded":
        return f"attempt {n} found nothing stale"
    return f"attempt {n} {status} before deleting anything"


def phase_attempts(man: dict, phase: str) -> list[dict]:
    """Return every recorded attempt of a phase (not SKIPPED), first first."""
    return [
        r
        for r in man["records"]
        if r.get("phase") == phase and r.get("kind") == "phase" and r["status"] != PhaseStatus.SKIPPED
    ]


def run_backups(man: dict) -> list[dict]:
    """Return every backup any cleanup attempt of the run made, in the order they were made.

    Each entry: table, backup, backup_rows, cutoff, deleted (rows that attempt deleted from the
    table; None when its journal cannot tell), phase and attempt. Sources: the attempts'
    recorded results and their journals (the only source for an attempt that was killed).
    """
    found: dict[str, dict] = {}
    for rec in man["records"]:
        if rec.get("kind") in (manifest.ARCHIVE, ROLLBACK_KIND):
            continue
        from_results = result_backups(rec.get("results") or {})
        from_journal = _journal_backups(rec.get("journal") or {})
        for entry in [*from_results, *from_journal]:
            merged = found.setdefault(
                entry["backup"], {"phase": rec["phase"], "attempt": rec.get("attempt")}
            )
            merged.update({k: v for k, v in entry.items() if v is not None})
            merged.setdefault("deleted", None)
    return list(found.values())


def result_backups(results: dict) -> list[dict]:
    """Return the backups a phase's recorded results name, with their cutoff and deletes."""
    deleted = {t.get("table"): t.get("deleted") for t in results.get("tables") or []}
    out = []
    for b in results.get("backups") or []:
        short = b["table"].split(".", 1)[-1]
        out.append(
            {
                "table": b["table"],
                "backup": b["backup"],
                "backup_rows": b.get("backup_rows"),
                "cutoff": b.get("cutoff") or results.get("cutoff"),
                "deleted": b.get("deleted", deleted.get(short)),
            }
        )
    return out


def _journal_backups(summary: dict) -> list[dict]:
    unknown = set(summary.get("unknown") or [])
    deleted = summary.get("deleted") or {}
    return [
        {**b, "deleted": None if b["table"] in unknown else deleted.get(b["table"], 0)}
        for b in summary.get("backups") or []
    ]
