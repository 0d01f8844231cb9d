"""The run manifest: one record per phase attempt, each chained to the one before by hash.

`manifest.json` holds a header (run id, environment, overrides with secrets redacted, the
planned phases) and a list of records. Each record carries the sha256 of its executed
notebook, the hash of the record before it (the header's hash for the first) and its own
hash over everything else, so `verify` can name the first record or file that changed.
Every time the runner finishes writing a run (deployment log, report) it appends an archive
record with the sha256 of every other file in the run dir: results, log, report, bundle.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_lib import secrets
from runbook_lib.errors import RunDirError
from runbook_lib.statuses import PhaseStatus, Verification

MANIFEST = "manifest.json"
ARCHIVE = "archive"
# A resume or rollback reopens a sealed run with this record before it changes anything, so a
# killed continuation reads as unsealed (incomplete), never as files changed behind the seal.
REOPEN = "reopen"
MARKERS = (ARCHIVE, REOPEN)  # kinds of record that are not a phase
# The working copies a person steps through in an interactive run (`runbook lab`): JupyterLab
# keeps saving them, so they are never hashed; sealing archives a copy as the phase's notebook.
WORKING_DIR = "lab"


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _hash(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k != "hash"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def header_hash(manifest: dict) -> str:
    """Return the hash the first record chains to."""
    return _hash(manifest["header"])


def create(run_dir: Path, header: dict) -> dict:
    """Write a new manifest with `header` (secrets redacted) and no records; return it."""
    manifest = {"header": secrets.redact_mapping(header), "records": []}
    save(run_dir, manifest)
    return manifest


def load(run_dir: Path) -> dict:
    """Read a run's manifest; raise RunDirError for a missing folder or an unreadable manifest."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise RunDirError(str(folder), "no such run folder")
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise RunDirError(str(folder), f"holds no {MANIFEST}, so it is not a run") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(str(folder), f"{MANIFEST} is not valid JSON ({e})") from None
    header = data.get("header") if isinstance(data, dict) else None
    if not (isinstance(header, dict) and {"run_id", "env"} <= set(header)
            and isinstance(data.get("records"), list)):  # fmt: skip
        raise RunDirError(str(folder), f"{MANIFEST} has no run header and records")
    return data


def save(run_dir: Path, manifest: dict) -> None:
    """Write the manifest atomically."""
    path = Path(run_dir) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(path)


def append(run_dir: Path, record: dict, before_save: Callable[[dict], None] | None = None) -> dict:
    """Chain `record` (with its notebook's sha256) to the manifest; return the stored record.

    `before_save(manifest)` runs with the record chained but not yet saved (the anchor is
    written there, so a saved head always has its anchor row); if it raises, nothing is saved.
    """
    manifest = load(run_dir)
    records = manifest["records"]
    # Nothing secret is hashed into the chain: every string is scanned for secret-looking values
    # (results, checks, reasons), and parameters also lose the values of secret-named keys.
    rec, scrubbed = secrets.scrub(record, by_key=False)
    if isinstance(rec.get("parameters"), dict):
        rec["parameters"], by_key = secrets.scrub(rec["parameters"])
        scrubbed += by_key
    if scrubbed or "secrets_redacted" in rec:
        rec["secrets_redacted"] = int(rec.get("secrets_redacted") or 0) + scrubbed
    rec["seq"] = len(records) + 1
    nb = rec.get("notebook")
    rec["notebook_sha256"] = (
        sha256_file(Path(run_dir) / nb) if nb and (Path(run_dir) / nb).exists() else None
    )
    rec["prev_hash"] = records[-1]["hash"] if records else header_hash(manifest)
    rec["hash"] = _hash(rec)
    records.append(rec)
    if before_save:
        before_save(manifest)
    save(run_dir, manifest)
    return rec


def latest_status(manifest: dict) -> dict[str, dict]:
    """Return each phase's latest record (archive and reopen records are not phases)."""
    out: dict[str, dict] = {}
    for rec in manifest["records"]:
        if rec.get("kind") not in MARKERS:
            out[rec["phase"]] = rec
    return out


def _archived(rel: str) -> bool:
    """Return whether a run-dir file belongs in an archive record."""
    parts = rel.split("/")
    # Hidden files (JupyterLab's .ipynb_checkpoints) and bytecode appear when someone only
    # opens or imports an archive; the manifest hashes itself record by record.
    return rel not in (MANIFEST, f"{MANIFEST}.tmp") and parts[0] != WORKING_DIR and not any(
        p.startswith(".") or p == "__pycache__" for p in parts
    )


def uncovered_files(run_dir: Path, manifest: dict) -> dict[str, str]:
    """Return {relative path: sha256} of every run-dir file no phase record's notebook covers."""
    run_dir = Path(run_dir)
    covered = {r.get("notebook") for r in manifest["records"] if r.get("kind") not in MARKERS}
    out = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_file() and rel not in covered and _archived(rel):
            out[rel] = sha256_file(path)
    return out


def append_archive(
    run_dir: Path, secrets_redacted: int = 0, before_save: Callable[[dict], None] | None = None
) -> dict:
    """Chain an archive record holding the sha256 of every file no phase record covers.

    `secrets_redacted` counts the secret values the archive's last scan redacted from its files;
    `before_save` is append's (the anchor).
    """
    files = uncovered_files(run_dir, load(run_dir))
    record = {
        "phase": ARCHIVE,
        "kind": ARCHIVE,
        "status": PhaseStatus.SUCCEEDED,
        "files": files,
        "secrets_redacted": secrets_redacted,
    }
    return append(run_dir, record, before_save)


@dataclass
class VerifyResult:
    """What `verify` found: tampering (`problems`), what is missing, and the anchor's state.

    The verdict is TAMPERED when anything recorded changed (a hash, a link, a file, the
    anchor disagreeing), INCOMPLETE when the chain is intact but a planned phase has no
    record, the chain does not end in its archive record, or the head is not anchored, and
    VERIFIED otherwise.
    """

    run_dir: Path
    records: int
    problems: list[str] = field(default_factory=list)
    files: int = 0  # files checked besides the phase notebooks (the latest archive record's)
    missing: list[str] = field(default_factory=list)
    anchor: Any = None  # anchor.AnchorCheck, or None when the anchor was not read

    @property
    def intact(self) -> bool:
        """Return whether nothing recorded changed (the run may still be incomplete)."""
        return not self.problems

    @property
    def verdict(self) -> str:
        """Return VERIFIED, INCOMPLETE or TAMPERED."""
        if self.problems:
            return Verification.TAMPERED
        return Verification.INCOMPLETE if self.missing else Verification.VERIFIED

    @property
    def ok(self) -> bool:
        """Return whether the run is VERIFIED: intact, complete and (when read) anchored."""
        return self.verdict == Verification.VERIFIED

    @property
    def first(self) -> str | None:
        """Return the first problem found (else the first thing missing), or None."""
        return (self.problems or self.missing or [None])[0]


def _label(rec: dict) -> str:
    return f"record {rec.get('seq')} ({rec.get('phase')})"


def _file_problem(run_dir: Path, rel: str, sha: str | None, label: str) -> str | None:
    path = run_dir / rel
    if not path.is_file():
        return f"file {rel} of {label} is missing"
    if sha256_file(path) != sha:
        return f"file {rel} of {label} changed after it was archived"
    return None


def _check_chain(run_dir: Path, manifest: dict, problems: list[str]) -> None:
    """Check every record's link, hash and notebook, whatever its kind or status."""
    prev = header_hash(manifest)
    for rec in manifest["records"]:
        label = _label(rec)
        if rec.get("prev_hash") != prev:
            problems.append(
                f"{label}: does not chain to the record before it "
                f"(a record before it, or the header, was edited or removed)"
            )
        if _hash(rec) != rec.get("hash"):
            problems.append(
                f"{label}: its content no longer matches its hash (the record was edited)"
            )
        if rec.get("notebook"):
            problems.append(
                _file_problem(run_dir, rec["notebook"], rec.get("notebook_sha256"), label)
            )
        prev = rec.get("hash")


def _check_archive(run_dir: Path, manifest: dict, problems: list, missing: list) -> int:
    """Check the latest archive record's files, and that no file sits outside every record.

    On a sealed run (the chain ends in its archive record) any difference is tampering. On a
    run continued after its seal (a reopen record or phase records follow it) files the
    continuation rewrites, and files not sealed yet, are only incomplete: the next seal
    covers them.
    """
    records = manifest["records"]
    archive = next((r for r in reversed(records) if r.get("kind") == ARCHIVE), None)
    sealed = bool(records) and records[-1].get("kind") == ARCHIVE
    found = problems if sealed else missing
    files = (archive or {}).get("files", {})
    for rel, sha in sorted(files.items()):
        problem = _file_problem(run_dir, rel, sha, _label(archive))
        if problem:
            found.append(problem if sealed else f"{problem} (not sealed again yet)")
    for rel in uncovered_files(run_dir, manifest):
        if rel not in files:
            found.append(
                f"file {rel} was added after the run was sealed (it is covered by no record)"
                if sealed
                else f"file {rel} is not sealed yet (covered by no record)"
            )
    return len(files)


def _check_complete(run_dir: Path, manifest: dict, missing: list) -> None:
    """Record what a complete run has and this one lacks: planned phases, the final seal."""
    records = manifest["records"]
    have = {r.get("phase") for r in records if r.get("kind") not in MARKERS}
    absent = [p for p in manifest["header"].get("planned", []) if p not in have]
    found = [f"no record for planned phase(s) {', '.join(absent)}"] if absent else []
    if not records or records[-1].get("kind") != ARCHIVE:
        last = _label(records[-1]) if records else "the header"
        found.append(
            f"the chain ends in {last}, not in an archive record: the run stopped before it "
            f"was sealed (to fix this, `runbook resume {run_dir}`)"
        )
    missing[:0] = found  # what the run lacks first, then the files not sealed yet


def _check_anchor(manifest: dict, result: VerifyResult) -> None:
    from runbook_lib.run import anchor

    result.anchor = anchor.check(manifest, header_hash(manifest))
    if result.anchor.state == anchor.DIFFERS:
        result.problems.extend(result.anchor.problems)
    elif result.anchor.state == anchor.MISSING:
        result.missing.append(f"the head is not anchored: {result.anchor.detail}")
    elif result.anchor.state == anchor.UNAVAILABLE:
        result.missing.append(f"the anchor was not checked: {result.anchor.detail}")


def verify(run_dir: Path, anchored: bool = True) -> VerifyResult:
    """Check the chain, every archived file, completeness and (if `anchored`) the anchor.

    Problems are named first first: the first record or file that changed.
    """
    run_dir = Path(run_dir)
    manifest = load(run_dir)
    problems: list[str | None] = []
    missing: list[str] = []
    _check_chain(run_dir, manifest, problems)
    files = _check_archive(run_dir, manifest, problems, missing)
    _check_complete(run_dir, manifest, missing)
    result = VerifyResult(
        run_dir, len(manifest["records"]), [p for p in problems if p], files, missing
    )
    if anchored:
        _check_anchor(manifest, result)
    return result


def require_intact(run_dir: Path, command: str) -> VerifyResult:
    """Verify a run before `command` trusts it; raise AuditChainError when it was tampered with.

    An incomplete run (killed, failed, not sealed) is what resume and rollback are for, so
    only tampering is refused, and a run once sealed whose anchor cannot be read right now:
    an edit rehashed end to end would pass unnoticed.
    """
    from runbook_lib.errors import AuditChainError
    from runbook_lib.run.anchor import UNAVAILABLE

    result = verify(run_dir)
    if not result.intact:
        raise AuditChainError(Path(run_dir), command, result.problems)
    was_sealed = any(r.get("kind") == ARCHIVE for r in load(run_dir)["records"])
    if was_sealed and result.anchor.state == UNAVAILABLE:
        problem = f"the anchor of its sealed head could not be checked: {result.anchor.detail}"
        raise AuditChainError(Path(run_dir), command, [problem])
    return result


def reopen_record(command: str) -> dict:
    """Return the record a resume or rollback chains before it changes a sealed run."""
    import getpass
    import socket

    return {
        "phase": command,
        "kind": REOPEN,
        "status": PhaseStatus.STARTED,
        "reason": f"reopened by `runbook {command}` ({getpass.getuser()}@{socket.gethostname()})",
    }


def summary_rows(manifest: dict) -> list[dict[str, Any]]:
    """Return one row per phase (latest attempt): phase, status, times, reason."""
    return [
        {
            "phase": r["phase"],
            "status": r["status"],
            "started_at": r.get("started_at"),
            "ended_at": r.get("ended_at"),
            "seconds": r.get("seconds"),
            "reason": r.get("reason") or "",
        }
        for r in latest_status(manifest).values()
    ]
