"""One offline HTML report of a run: the page an auditor opens first.

It starts with what an auditor asks first: the run, the environment, the code deployed and
its tree state, who deployed and who verified, the verdict and the success criteria. Then a
table of contents with every phase and every attempt of it, then each executed notebook.

Notebooks are rendered with nbconvert's `basic` template (body only, no JavaScript, no CDN);
charts are already embedded PNG in the executed notebooks, and widgets become static text
(static_widgets), so the file reads offline. Long evidence wraps; nothing is cut.
"""

from __future__ import annotations

import html
from pathlib import Path

from runbook_lib.run import deployment_log, manifest, rollback_phase
from runbook_lib.run.display import esc, status_html, table_html
from runbook_lib.run.notebook_html import Fragments, notebook_html
from runbook_lib.statuses import CheckStatus, PhaseStatus, RunVerdict

REPORT_NAME = "report.html"
# Everything wraps inside the page: at 1,280 px nothing scrolls sideways and nothing is cut.
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;color:#222;
overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.5em 0;max-width:100%}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere;min-width:4.5em}th{overflow-wrap:normal}table.dataframe{font-size:.8em}
.SUCCEEDED,.VERIFIED{color:#176b2c;font-weight:bold}.DEPLOYED,.INCOMPLETE{color:#8a5a00}.FAILED,.ROLLED_BACK{color:#b00020;font-weight:bold}.SKIPPED{color:#777}
header.run{border-bottom:3px solid #444;padding-bottom:.5em}
.verdict{font-size:1.3em;font-weight:bold}
nav.toc li{margin-bottom:.3em}
section.phase{border-top:3px solid #444;margin-top:2.5em}
section.attempt{border-top:1px dashed #999;margin-top:1.5em}
.jp-InputArea-editor,.input_area{background:#f6f8fa;padding:4px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:2px 0}img{max-width:100%;height:auto}
.jp-OutputArea-output{max-width:100%;overflow-x:auto}
.INTERRUPTED{color:#b35c00;font-weight:bold}
.jp-OutputArea-output pre,.output_text pre{background:#fff}
.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]{background:#fdd}
a.top{font-size:.8em;font-weight:normal;margin-left:1em}
"""


def phase_anchor(phase: str) -> str:
    """Return the id of a phase's section in the report."""
    return f"phase-{phase}"


def attempt_anchor(rec: dict) -> str:
    """Return the id of one attempt's section: phase and attempt number."""
    return f"{rec['phase']}-attempt{rec.get('attempt') or 1}"


def _phases(man: dict) -> dict[str, list[dict]]:
    """Return each phase's records (attempts and skips) in run order; archive records left out."""
    out: dict[str, list[dict]] = {}
    for rec in man["records"]:
        if rec.get("kind") != manifest.ARCHIVE:
            out.setdefault(rec["phase"], []).append(rec)
    return out


def _post_deployment(man: dict) -> dict | None:
    """Return phase 06's latest record: the success criteria and the post-deployment checks."""
    return next((r for k, r in manifest.latest_status(man).items() if k.startswith("06")), None)


def verdict(man: dict) -> tuple[str, str]:
    """Return the run's verdict word and why: ROLLED BACK, FAILED, INCOMPLETE, DEPLOYED or VERIFIED.

    DEPLOYED means every phase succeeded; VERIFIED also needs every success criterion met and
    no post-deployment check still PENDING (the evidence comes from later runs).
    """
    back = rollback_phase.summary(man)
    if back:  # whatever the deployment was, it is undone: that is what an auditor must see first
        return RunVerdict.ROLLED_BACK, back.removeprefix("ROLLED BACK ")
    latest = manifest.latest_status(man)
    failed = [r for r in latest.values() if r["status"] == PhaseStatus.FAILED]
    if failed:
        return RunVerdict.FAILED, "; ".join(f"{r['phase']}: {r.get('reason')}" for r in failed)
    planned = man["header"].get("planned") or list(latest)
    missing = [p for p in planned if latest.get(p, {}).get("status") != PhaseStatus.SUCCEEDED]
    if missing or not latest:
        return RunVerdict.INCOMPLETE, f"not run or skipped: {', '.join(missing) or 'every phase'}"
    post = _post_deployment(man)
    results = (post or {}).get("results") or {}
    criteria = results.get("success_criteria") or []
    pending = [w for w in results.get("checks_by_window") or [] if w.get("status") == CheckStatus.PENDING]
    unmet = [c for c in criteria if not c.get("met")]
    if post is None or not criteria:
        return RunVerdict.DEPLOYED, "every phase succeeded; no post-deployment validation in this run"
    if unmet or pending:
        return RunVerdict.DEPLOYED, (
            f"every phase succeeded; {len(criteria) - len(unmet)} of {len(criteria)} success "
            f"criteria met, {len(pending)} post-deployment check(s) PENDING until later runs "
            f"give evidence (`runbook resume outputs/{man['header']['env']}/{man['header']['run_id']} --rerun 06`)"
        )
    return RunVerdict.VERIFIED, "every phase succeeded and every success criterion is met"


def _header(man: dict) -> str:
    h = man["header"]
    who = deployment_log.people_and_code(man)
    word, why = verdict(man)
    facts = [
        ("run", h["run_id"]),
        ("environment", h["env"]),
        ("started", h["created_at"]),
        ("code", who["code"]),
        ("deployed by", who["deployed_by"]),
        ("verified by", who["verified_by"]),
        ("verdict", f"{word.replace('_', ' ')}: {why}"),
    ]
    criteria = ((_post_deployment(man) or {}).get("results") or {}).get("success_criteria") or []
    crit = (
        table_html(
            [
                (c.get("criterion"), "yes" if c.get("met") else "NO", c.get("evidence", ""))
                for c in criteria
            ],
            ("success criterion", "met", "evidence"),
        )
        if criteria
        else "<p>No success criteria recorded (phase 06 did not run to its end).</p>"
    )
    return (
        f"<header class='run' id='top'><h1>Run {esc(h['run_id'])} ({esc(h['env'])})</h1>"
        f"<p class='verdict'>Verdict: <span class='{word}'>{word.replace('_', ' ')}</span></p>"
        f"{table_html(facts, labels=True)}<h2 id='criteria'>Success criteria</h2>{crit}"
        f"<p>Archive: <code>manifest.json</code>, <code>deployment_log.md</code> and the "
        f"executed notebooks beside this file; <code>runbook verify</code> rechecks them.</p>"
        f"</header>"
    )


def _toc(phases: dict[str, list[dict]]) -> str:
    items = []
    for phase, recs in phases.items():
        latest = recs[-1]
        attempts = ", ".join(
            f"<a href='#{attempt_anchor(r)}'>{esc(r['notebook'])}</a> {status_html(r['status'])}"
            for r in recs
            if r.get("notebook")
        )
        reason = f" ({esc(latest.get('reason'))})" if latest.get("reason") else ""
        seconds = f", {latest['seconds']} s" if latest.get("seconds") else ""
        items.append(
            f"<li><a href='#{phase_anchor(phase)}'>{esc(phase)}</a> "
            f"{status_html(latest['status'])}{seconds}{reason}"
            + (f"<br>attempts: {attempts}" if attempts else "")
            + "</li>"
        )
    return f"<nav class='toc'><h2>Contents</h2><ol>{''.join(items)}</ol></nav>"


def _phase_section(run_dir: Path, phase: str, recs: list[dict], fragments: Fragments | None) -> str:
    parts = [
        f"<section class='phase' id='{phase_anchor(phase)}'><h2>{esc(phase)} "
        f"{status_html(recs[-1]['status'])}<a class='top' href='#top'>top</a></h2>"
    ]
    for rec in recs:
        nb = rec.get("notebook")
        if not nb or not (run_dir / nb).exists():
            parts.append(f"<p>{esc(rec['status'])}: {esc(rec.get('reason') or 'no notebook')}</p>")
            continue
        parts.append(
            f"<section class='attempt' id='{attempt_anchor(rec)}'><h3>{esc(nb)} "
            f"{status_html(rec['status'])}</h3>"
            + (f"<p>reason: {esc(rec['reason'])}</p>" if rec.get("reason") else "")
            + f"{notebook_html(run_dir / nb, rec.get('results'), fragments)}</section>"
        )
    return "".join(parts) + "</section>"


def render(run_dir: Path, fragments: Fragments | None = None) -> str:
    """Return the run's report as one self-contained HTML page (notebooks from `fragments`)."""
    run_dir = Path(run_dir)
    man = manifest.load(run_dir)
    phases = _phases(man)
    body = [_header(man), _toc(phases)]
    body += [_phase_section(run_dir, phase, recs, fragments) for phase, recs in phases.items()]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>run "
        f"{html.escape(man['header']['run_id'])}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )


def write(run_dir: Path, fragments: Fragments | None = None) -> Path:
    """Write `report.html` into the run dir; return its path."""
    path = Path(run_dir) / REPORT_NAME
    path.write_text(render(run_dir, fragments))
    return path
