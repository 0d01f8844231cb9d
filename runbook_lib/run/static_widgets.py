"""Widgets in an archived notebook as static text: the report needs no JavaScript and no CDN.

nbconvert renders an ipywidgets view as a script that loads the widget manager from a CDN, so
offline it shows nothing. Each view is replaced by what its saved state says (the text typed,
the boxes ticked) and, for every cell that held a form, by what the phase recorded from it
(the confirmation and the sign-offs in its results), which is the evidence that counts.
"""

from __future__ import annotations

import copy
from typing import Any

from runbook_lib.run.display import esc, table_html

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
_BOX = "display:inline-block;border:1px solid #ccc;padding:1px 6px;margin:1px 4px"


def _children(state: dict) -> list[str]:
    return [str(c).removeprefix("IPY_MODEL_") for c in state.get("children") or []]


def render_model(models: dict, model_id: str) -> str:
    """Return one widget (and its children) as static HTML from the saved widget state."""
    model = models.get(model_id)
    if model is None:
        return "<i>(a widget whose state was not saved)</i>"
    name, state = model.get("model_name", ""), model.get("state", {})
    label = esc(state.get("description") or "")
    if name in ("HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel"):
        sep = " " if name == "HBoxModel" else "<br>"
        return "<div>" + sep.join(render_model(models, c) for c in _children(state)) + "</div>"
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<span>{state.get('value', '')}</span>"
    if name == "LabelModel":
        return f"<span>{esc(state.get('value', ''))}</span>"
    if name in ("CheckboxModel", "ToggleButtonModel"):
        return f"<span>{'☑' if state.get('value') else '☐'} {label}</span>"
    if name == "ButtonModel":
        return f"<span style='{_BOX}'>{label}</span>"
    if name == "PasswordModel":
        return f"<span>{label} <code>(hidden)</code></span>"
    value = state.get("value")
    shown = f"<code>{esc(value)}</code>" if value not in (None, "") else "<i>(empty)</i>"
    return f"<span>{label} {shown}</span>"


def recorded_answers(results: dict) -> str:
    """Return the confirmation and sign-offs a phase recorded, as HTML (empty when none)."""
    parts = []
    confirmation = results.get("confirmation")
    if isinstance(confirmation, dict):
        rows = [(k, v if isinstance(v, str) else str(v)) for k, v in confirmation.items()]
        parts.append("<div>confirmation recorded:</div>" + table_html(rows))
    approvals = results.get("approvals")
    if isinstance(approvals, list) and approvals:
        rows = [(a.get("item"), a.get("name"), a.get("at")) for a in approvals]
        parts.append("<div>sign-offs recorded:</div>" + table_html(rows, ("item", "name", "at")))
    return "".join(parts)


def _static(markup: str, text: str) -> Any:
    import nbformat

    return nbformat.from_dict(
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"text/html": markup, "text/plain": text},
        }
    )


def _form_block(views: list[str], answers: str) -> Any:
    shown = "".join(views)
    saved = "as it was saved, and " if views else ""
    note = (
        f"<div><i>An interactive form in JupyterLab; here {saved}what the phase recorded:</i></div>"
    )
    markup = (
        f"<div class='static-widget' style='border-left:3px solid #888;padding-left:8px'>"
        f"{note}{shown}{answers or '<div>nothing was recorded from this form</div>'}</div>"
    )
    return _static(markup, "interactive form: see the recorded values")


def make_static(nb: Any, results: dict | None) -> Any:
    """Return a copy of notebook `nb` whose widget views are static HTML and with no widget state."""
    nb = copy.deepcopy(nb)
    models = (nb.metadata.get("widgets", {}).get(STATE, {}) or {}).get("state", {})
    answers = recorded_answers(results or {})
    for cell in nb.cells:
        outputs = cell.get("outputs") or []
        views = [o for o in outputs if VIEW in o.get("data", {})]
        if not views:
            continue
        ids = [o["data"][VIEW].get("model_id", "") for o in views]
        shown = [render_model(models, i) for i in ids] if models else []
        first = outputs.index(views[0])
        kept = [o for o in outputs if VIEW not in o.get("data", {})]
        kept.insert(first, _form_block(shown, answers))
        cell["outputs"] = kept
    nb.metadata.pop("widgets", None)
    return nb
