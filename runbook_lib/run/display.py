"""How a phase shows itself in JupyterLab and in the report: HTML a person reads, never wrapped text.

Every object a notebook cell ends with renders as HTML (`_repr_html_`) with a plain-text twin
(`__repr__`) for consoles; nothing a person must read or type is ever cut short. `setup_kernel`
makes a phase's kernel show pandas cells whole and log lines in the right stream: INFO plainly
on stdout, WARNING and above on stderr (JupyterLab paints stderr pink, as an error).
"""

from __future__ import annotations

import html
import logging
import sys
from collections.abc import Iterable, Sequence
from typing import Any

# Styles ride inline so JupyterLab, nbconvert and the report all show the same thing.
# JupyterLab lays tables out fixed (columns cut at the output's edge): ask for auto layout.
_TABLE = "border-collapse:collapse;margin:.3em 0;text-align:left;table-layout:auto;max-width:100%"
_CELL = (
    "border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;"
    "white-space:pre-wrap;overflow-wrap:break-word"
)
_STATUS_COLOURS = {
    "SUCCEEDED": "#176b2c",
    "ok": "#176b2c",
    "FAILED": "#b00020",
    "RUNNING": "#8a5a00",
}


def esc(value: Any) -> str:
    """Return `value` as escaped HTML text."""
    return html.escape("" if value is None else str(value))


class Html:
    """An HTML fragment that JupyterLab renders, with a plain-text twin for consoles."""

    def __init__(self, markup: str, text: str):
        self.markup, self.text = markup, text

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return self.text


def status_html(status: str) -> str:
    """Return a status word in its colour (SUCCEEDED green, FAILED red)."""
    colour = _STATUS_COLOURS.get(status, "#555")
    return f"<b style='color:{colour}'>{esc(status)}</b>"


def table_html(
    rows: Iterable[Sequence[Any]], header: Sequence[str] = (), raw: int = -1, labels: bool = False
) -> str:
    """Return rows as an HTML table whose cells wrap instead of being cut.

    Cells are escaped, except column `raw` (already HTML, for example a coloured status);
    with `labels` the first column is a row label that never wraps.
    """
    head = "".join(f"<th style='{_CELL}'>{esc(h)}</th>" for h in header)

    def cell(i: int, value: Any) -> str:
        text = value if i == raw else esc(value)
        if labels and i == 0:
            return f"<th style='{_CELL};white-space:nowrap;font-weight:600'>{text}</th>"
        return f"<td style='{_CELL}'>{text}</td>"

    body = "".join(
        "<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return (
        f"<table style='{_TABLE}'>"
        + (f"<thead><tr>{head}</tr></thead>" if head else "")
        + f"<tbody>{body}</tbody></table>"
    )


def facts_table(facts: Sequence[tuple[str, Any]], title: str = "") -> Html:
    """Return (label, value) pairs as a two-column table, with a one-line title."""
    markup = (f"<div><b>{esc(title)}</b></div>" if title else "") + table_html(facts, labels=True)
    text = "\n".join([title] * bool(title) + [f"{label}: {value}" for label, value in facts])
    return Html(markup, text)


def typed_line(line: str, intro: str) -> Html:
    """Return a line a person must type, whole, in its own block that wraps but never cuts."""
    markup = (
        f"<div>{esc(intro)}</div><pre style='white-space:pre-wrap;overflow-wrap:anywhere;"
        f"background:#f6f8fa;border:1px solid #ccc;padding:6px'><code>{esc(line)}</code></pre>"
    )
    return Html(markup, f"{intro}\n{line}")


class Sql:
    """A SQL statement shown as-is, the BigQuery Standard SQL production runs."""

    def __init__(self, text: str, title: str = ""):
        self.text, self.title = text.strip(), title

    def _repr_markdown_(self) -> str:
        head = f"**{self.title}**\n\n" if self.title else ""
        return f"{head}```sql\n{self.text}\n```"

    def __repr__(self) -> str:
        return (f"-- {self.title}\n" if self.title else "") + self.text


def sql(text: str, title: str = "") -> Sql:
    """Return `text` as a SQL block for display in a notebook."""
    return Sql(text, title)


def cleanup_plan(plan: Any, confirmation: str) -> Html:
    """Return a cleanup plan as a person should read it: cutoff, tables, the line to type."""
    frame = plan.summary().drop(columns=["token"], errors="ignore")
    cutoff = (
        f"cutoff {plan.cutoff} (today {plan.today} minus {plan.ttl_days} days, UTC): "
        f"rows dated before it are stale"
    )
    rows = frame.astype(str).values.tolist()
    if confirmation:
        typed = typed_line(confirmation, "To confirm this plan, type exactly:")
    else:
        typed = Html("<div>Nothing is stale: nothing to confirm.</div>", "Nothing is stale.")
    markup = f"<div>{esc(cutoff)}</div>{table_html(rows, list(frame.columns))}{typed.markup}"
    return Html(markup, f"{cutoff}\n{frame.to_string(index=False)}\n{typed.text}")


# -- the kernel a phase runs in ------------------------------------------------------------


class _BelowWarning(logging.Filter):
    """Pass the runbook's own lines below WARNING (other libraries' INFO chatter stays out)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING and record.name.startswith("runbook")


class _RoutedHandler(logging.StreamHandler):
    """A handler `route_logs` installed (so a second call changes nothing)."""


def route_logs() -> None:
    """Send log lines below WARNING to stdout and WARNING and above to stderr, once per kernel.

    JupyterLab shows stderr on a pink background, as an error; Python's logging writes every
    level there. A `logging.basicConfig` that ran first (the Cloud Function's module does one
    at import) is replaced, so its INFO lines stop showing as errors.
    """
    root = logging.getLogger()
    if any(isinstance(h, _RoutedHandler) for h in root.handlers):
        return
    for h in list(root.handlers):
        if type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.__stderr__):
            root.removeHandler(h)
    # INFO shows only where a phase asks for it (Phase.capture_logs lowers the level there).
    root.setLevel(logging.WARNING)
    out = _RoutedHandler(sys.stdout)
    out.addFilter(_BelowWarning())
    out.setFormatter(logging.Formatter("%(message)s"))
    err = _RoutedHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    err.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(out)
    root.addHandler(err)


def in_kernel() -> bool:
    """Return whether this code runs in a Jupyter kernel (JupyterLab, papermill)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


def setup_kernel() -> None:
    """Make a phase's kernel show tables whole and log lines in the right stream.

    Only in a Jupyter kernel: a test or script that opens a phase keeps its own settings.
    """
    if not in_kernel():
        return
    import pandas as pd

    # pandas cuts cells at 50 characters with "...": tokens, table ids and evidence are longer.
    pd.set_option("display.max_colwidth", None)
    route_logs()
