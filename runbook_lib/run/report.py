"""One offline HTML report of a run: a phase summary, then every executed notebook.

Notebooks are rendered with nbconvert's `basic` template (body only, no JavaScript, no CDN);
charts are already embedded PNG in the executed notebooks, so the file reads offline.
Widgets do not render (their JavaScript would come from a CDN); their values are recorded
as results instead.
"""

from __future__ import annotations

import functools
import html
from pathlib import Path

from runbook_lib.run import manifest

REPORT_NAME = "report.html"
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.SUCCEEDED{color:#176b2c;font-weight:bold}.FAILED{color:#b00020;font-weight:bold}.SKIPPED{color:#777}
section.nb{border-top:3px solid #444;margin-top:2.5em}
.jp-InputArea-editor,.input_area{background:#f6f8fa;padding:4px;overflow-x:auto}
pre{white-space:pre-wrap;margin:2px 0}img{max-width:100%}
.jp-OutputArea-output pre,.output_text pre{background:#fff}
.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]{background:#fdd}
"""


def _summary(man: dict) -> str:
    h = man["header"]
    rows = "".join(
        f"<tr><td>{html.escape(r['phase'])}</td><td class='{r['status']}'>{r['status']}</td>"
        f"<td>{r['seconds'] or ''}</td><td>{html.escape(r['reason'] or '')}</td></tr>"
        for r in manifest.summary_rows(man)
    )
    return (
        f"<h1>Run {html.escape(h['run_id'])} ({html.escape(h['env'])})</h1>"
        f"<p>Started {html.escape(h['created_at'])}. Archive: <code>manifest.json</code>, "
        f"<code>deployment_log.md</code> and the executed notebooks beside this file.</p>"
        f"<table><tr><th>phase</th><th>status</th><th>seconds</th><th>reason</th></tr>"
        f"{rows}</table>"
    )


@functools.cache
def _exporter():
    # One exporter per process: building one loads and compiles its templates (~0.3 s each).
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic")
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    return exporter


def _notebook_html(path: Path) -> str:
    import nbformat

    body, _ = _exporter().from_notebook_node(nbformat.read(path, as_version=4))
    return body


def render(run_dir: Path) -> str:
    """Return the run's report as one self-contained HTML page."""
    run_dir = Path(run_dir)
    man = manifest.load(run_dir)
    parts = [_summary(man)]
    for rec in man["records"]:
        nb = rec.get("notebook")
        if not nb or not (run_dir / nb).exists():
            continue
        parts.append(
            f"<section class='nb'><h2>{html.escape(nb)} "
            f"<span class='{rec['status']}'>{rec['status']}</span></h2>"
            f"{_notebook_html(run_dir / nb)}</section>"
        )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>run "
        f"{html.escape(man['header']['run_id'])}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )


def write(run_dir: Path) -> Path:
    """Write `report.html` into the run dir; return its path."""
    path = Path(run_dir) / REPORT_NAME
    path.write_text(render(run_dir))
    return path
