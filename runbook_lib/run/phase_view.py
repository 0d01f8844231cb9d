"""What a phase shows: its header (where and when it runs) and its closing summary of checks.

The header is the first output of every phase: the environment, the warehouse it writes to,
the date every cutoff is computed from and where that date comes from, and the run folder.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from runbook_lib.run.display import Html, esc, facts_table, status_html, table_html

if TYPE_CHECKING:
    from runbook_lib.run.params import Params
    from runbook_lib.run.phase import Phase


def today_source(
    params: Params, base: Params, notebook_today: str, run_dir: str, set_for_run: bool = False
) -> str:
    """Return where a phase's `today` comes from, in words.

    `base` is the params without the notebook's `today`, `params` the ones the phase uses;
    `set_for_run` whether the run was given `--set today=...`.
    """
    fixed = f"the date fixed by the today key of {params.source}"
    if not notebook_today:
        if base.today:
            return (
                f'{fixed} (today="" in this notebook means the params\' date, not the real today)'
            )
        return "the real date (UTC): neither the params nor this notebook fix one"
    if not run_dir:
        return "this notebook's today parameter"
    if set_for_run and base.today == params.today:
        return "the run's date, given to it with --set today=..."
    if base.today == params.today:
        return f"the run's date: {fixed}"
    if base.today is None:
        return "the run's date: the real date (UTC) when the run started"
    return "this notebook's today parameter, given to the run"


def warehouse_text(params: Params) -> str:
    """Return the warehouse a phase reads and writes: a DuckDB file or a BigQuery project."""
    if params.engine == "duckdb":
        return f"DuckDB file {params.warehouse_path / f'{params.project}.duckdb'}"
    if params.engine == "emulator":
        return (
            f"BigQuery project {params.project} on the BigQuery-API server (bqemulator) at "
            f"{params.bigquery.endpoint}"
        )
    return f"BigQuery project {params.project} (location {params.location})"


def _checks_so_far(phase: Phase) -> str:
    if not phase.checks:
        return "none run yet"
    ok = sum(c["ok"] for c in phase.checks)
    failed = len(phase.checks) - ok
    return f"{ok} passed, {failed} failed so far"


def header(phase: Phase) -> Html:
    """Return a phase's opening facts: environment, warehouse, today and its source, run folder."""
    if phase.run_id == "standalone":
        folder = f"standalone (not part of a run): results go to {phase.results_path}"
    else:
        folder = f"{phase.run_dir} (run {phase.run_id})"
    today: dt.date = phase.today
    facts = [
        ("environment", f"{phase.env} (params {phase.params.source})"),
        ("warehouse", warehouse_text(phase.params)),
        ("today", f"{today.isoformat()}: {phase.today_source}"),
        ("run folder", folder),
        ("checks", _checks_so_far(phase)),
    ]
    return facts_table(facts, f"phase {phase.name}")


def summary(phase: Phase, status: str) -> Html:
    """Return a finished phase's verdict and every check with its whole detail."""
    ok = sum(c["ok"] for c in phase.checks)
    line = f"phase {phase.name} ({phase.env}, run {phase.run_id}): {status}, "
    line += f"{ok} of {len(phase.checks)} checks passed" if phase.checks else "no check ran"
    rows = [
        (c["check"], status_html("ok" if c["ok"] else "FAILED"), c["detail"]) for c in phase.checks
    ]
    head = f"<div>phase <b>{esc(phase.name)}</b> ({esc(phase.env)}, run {esc(phase.run_id)}): "
    head += f"{status_html(status)}, {esc(line.rsplit(', ', 1)[1])}</div>"
    markup = head + (table_html(rows, ("check", "result", "detail"), raw=1) if rows else "")
    text = "\n".join(
        [line]
        + [f"{'ok' if c['ok'] else 'FAILED':6} {c['check']}: {c['detail']}" for c in phase.checks]
    )
    return Html(markup, text)
