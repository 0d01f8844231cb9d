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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_lib import secrets
from runbook_lib.errors import RunDirError

MANIFEST = "manifest.json"
# What looks secret is defined once, in runbook_lib/secrets.py.
REDACTED = secrets.REDACTED
redact = secrets.redact_mapping
SUCCEEDED, FAILED, SKIPPED = "SUCCEEDED", "FAILED", "SKIPPED"
ARCHIVE = "archive"


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


def append(run_dir: Path, record: dict) -> dict:
    """Chain `record` (with its notebook's sha256) to the manifest; return the stored record."""
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
    save(run_dir, manifest)
    return rec


def latest_status(manifest: dict) -> dict[str, dict]:
    """Return each phase's latest record (archive records are not phases)."""
    out: dict[str, dict] = {}
    for rec in manifest["records"]:
        if rec.get("kind") != ARCHIVE:
            out[rec["phase"]] = rec
    return out


def _archived(rel: str) -> bool:
    """Return whether a run-dir file belongs in an archive record."""
    parts = rel.split("/")
    # Hidden files (JupyterLab's .ipynb_checkpoints) and bytecode appear when someone only
    # opens or imports an archive; the manifest hashes itself record by record.
    return rel not in (MANIFEST, f"{MANIFEST}.tmp") and not any(
        p.startswith(".") or p == "__pycache__" for p in parts
    )


def uncovered_files(run_dir: Path, manifest: dict) -> dict[str, str]:
    """Return {relative path: sha256} of every run-dir file no phase record's notebook covers."""
    run_dir = Path(run_dir)
    covered = {r.get("notebook") for r in manifest["records"] if r.get("kind") != ARCHIVE}
    out = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_file() and rel not in covered and _archived(rel):
            out[rel] = sha256_file(path)
    return out


def append_archive(run_dir: Path, secrets_redacted: int = 0) -> dict:
    """Chain an archive record holding the sha256 of every file no phase record covers.

    `secrets_redacted` counts the secret values the archive's last scan redacted from its files.
    """
    files = uncovered_files(run_dir, load(run_dir))
    record = {
        "phase": ARCHIVE,
        "kind": ARCHIVE,
        "status": SUCCEEDED,
        "files": files,
        "secrets_redacted": secrets_redacted,
    }
    return append(run_dir, record)


@dataclass
class VerifyResult:
    """What `verify` found: ok, the first problem, and every problem."""

    run_dir: Path
    records: int
    problems: list[str] = field(default_factory=list)
    files: int = 0  # files checked besides the phase notebooks (the latest archive record's)

    @property
    def ok(self) -> bool:
        """Return whether the chain and every archived notebook are intact."""
        return not self.problems

    @property
    def first(self) -> str | None:
        """Return the first problem found, or None."""
        return self.problems[0] if self.problems else None


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


def _check_archive(run_dir: Path, manifest: dict, problems: list[str]) -> int:
    """Check the latest archive record's files, and that no file sits outside every record."""
    archive = next((r for r in reversed(manifest["records"]) if r.get("kind") == ARCHIVE), None)
    files = (archive or {}).get("files", {})
    for rel, sha in sorted(files.items()):
        problems.append(_file_problem(run_dir, rel, sha, _label(archive)))
    for rel in uncovered_files(run_dir, manifest):
        if rel not in files:
            problems.append(
                f"file {rel} is covered by no record (it was added after the run was "
                f"archived, or the run never finished: `runbook resume` it)"
            )
    return len(files)


def verify(run_dir: Path) -> VerifyResult:
    """Recompute the hash chain and every archived file's sha256; name what changed, first first."""
    run_dir = Path(run_dir)
    manifest = load(run_dir)
    problems: list[str | None] = []
    _check_chain(run_dir, manifest, problems)
    files = _check_archive(run_dir, manifest, problems)
    return VerifyResult(run_dir, len(manifest["records"]), [p for p in problems if p], files)


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
