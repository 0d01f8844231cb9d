"""Write a run's archive under `outputs/<env>/<run_id>/`: notebook names, records, secrets, report.

Each attempt of a phase keeps its own executed notebook (`NN_x.ipynb`, `NN_x.attempt2.ipynb`, ...),
results file (`results/NN_x.json`, `results/NN_x.attempt2.json`) and journal
(`journal/NN_x.jsonl`, ...), so a resumed run never overwrites the evidence of the attempt it
resumed from, even one killed before anything recorded it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from runbook_lib import secrets
from runbook_lib.run import anchor, manifest
from runbook_lib.run.params import Params
from runbook_lib.statuses import PhaseStatus

log = logging.getLogger(__name__)


# What an attempt leaves in the run dir: folder and suffix of each kind of file.
NOTEBOOK, RESULTS, JOURNAL = ("", ".ipynb"), ("results", ".json"), ("journal", ".jsonl")


def attempt_file(name: str, attempt: int, kind: tuple[str, str] = NOTEBOOK) -> str:
    """Return the run-dir-relative path of attempt `attempt`'s notebook, results or journal."""
    folder, suffix = kind
    base = f"{name}{suffix}" if attempt == 1 else f"{name}.attempt{attempt}{suffix}"
    return f"{folder}/{base}" if folder else base


def attempts_on_disk(run_dir: Path, name: str) -> list[int]:
    """Return the attempts of phase `name` that left a notebook, results file or journal."""
    found = set()
    for folder, suffix in (NOTEBOOK, RESULTS, JOURNAL):
        pattern = re.compile(rf"{re.escape(name)}(?:\.attempt(\d+))?{re.escape(suffix)}")
        where = Path(run_dir) / folder if folder else Path(run_dir)
        for path in where.glob(f"{name}*{suffix}") if where.is_dir() else []:
            match = pattern.fullmatch(path.name)
            if match:
                found.add(int(match.group(1) or 1))
    return sorted(found)


def next_attempt(run_dir: Path, name: str) -> int:
    """Return the number of phase `name`'s next attempt: one past any on disk or recorded."""
    recorded = []
    if (Path(run_dir) / manifest.MANIFEST).exists():
        recorded = [
            r.get("attempt") or 0
            for r in manifest.load(run_dir)["records"]
            if r.get("phase") == name
        ]
    return max([0, *attempts_on_disk(run_dir, name), *recorded]) + 1


def attempt_name(run_dir: Path, name: str) -> tuple[int, str]:
    """Return the next attempt number of phase `name` and the file its notebook is saved to."""
    n = next_attempt(run_dir, name)
    return n, attempt_file(name, n)


def skipped_record(name: str, reason: str) -> dict:
    """Return the manifest record of a phase that did not run, with the reason."""
    return {
        "phase": name,
        "kind": "phase",
        "status": PhaseStatus.SKIPPED,
        "reason": reason,
        "started_at": None,
        "ended_at": None,
        "parameters": {},
        "results": {},
        "checks": [],
    }


def known_secrets(params: Params, *mappings: dict) -> set[str]:
    """Return the values of secret-named settings in the params and `mappings` (e.g. overrides)."""
    found = secrets.secret_values(params.model_dump(mode="json"))
    for mapping in mappings:
        found |= secrets.secret_values(mapping)
    return found


def scrub_phase(
    run_dir: Path, name: str, notebook: Path, parameters: dict, params: Params, attempt: int = 1
) -> int:
    """Redact secrets from a phase's notebook (source and every output) and results; count them.

    Secret-named parameter and params values, and anything that looks secret (secrets.py), are
    redacted wherever they appear: cell sources, stream text, HTML and plain outputs, results.
    """
    known = known_secrets(params, parameters)
    scrubbed = sum(
        secrets.scrub_file(p, known)
        for p in (notebook, run_dir / attempt_file(name, attempt, RESULTS))
    )
    if scrubbed:
        log.warning("redacted %d secret value(s) from the archive of %s", scrubbed, name)
    return scrubbed


def finalise(run_dir: Path, params: Params, overrides: dict, fragments=None) -> dict:
    """Write deployment_log.md and report.html, then chain the archive record; return it.

    `fragments` (notebook_html.Fragments) holds the notebooks' HTML rendered while the run went
    on; without it every notebook is rendered here.

    The log and report are best effort (the run's verdict must not depend on them); the
    archive record is not: it is what lets `verify` catch an edit of the log, the report,
    a results file or the function bundle, none of which a phase record hashes. Its head is
    anchored in the warehouse's runs table before the record is saved (anchor.py): if that
    fails, the run stays unsealed (incomplete) and AnchorError says how to seal it.
    """
    from runbook_lib.run import deployment_log, report

    # Every text file of the run dir (log, report, results, journals, the bundle ...) is scanned;
    # the manifest scrubs its own records as they are chained. All but the report first, while
    # the report's last notebooks are still being rendered (notebook_html.Fragments), then the
    # report, which is made from the scanned notebooks.
    known = known_secrets(params, overrides)
    _write("deployment log", deployment_log.write, run_dir)
    hits = secrets.scrub_tree(run_dir, known, skip={manifest.MANIFEST, report.REPORT_NAME})
    _write("report", lambda d: report.write(d, fragments), run_dir)
    in_report = secrets.scrub_file(Path(run_dir) / report.REPORT_NAME, known)  # none: 0
    if in_report:
        hits[report.REPORT_NAME] = in_report
    for rel, n in hits.items():
        log.error("%d secret value(s) reached %s; redacted", n, rel)
    return manifest.append_archive(
        run_dir, secrets_redacted=sum(hits.values()), before_save=anchor.writer(params)
    )


def _write(what: str, write, run_dir: Path) -> None:
    """Write one of the run's documents, best effort: the run's verdict must not depend on it."""
    try:
        write(run_dir)
    except Exception:  # noqa: BLE001
        log.exception("could not write the %s of %s", what, run_dir)
