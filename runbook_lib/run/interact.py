"""Confirmations and sign-offs: ipywidgets in JupyterLab, parameters when run headless.

A notebook cell cannot block waiting for a widget, so every interaction takes two cells: the
first shows the form (`ask_confirmation`, `approvals`) and returns a holder the widget writes
into; the next cell checks the holder (`confirm`, `Approvals.require`). Headless (papermill),
the value comes from the notebook's parameters and no widget is shown. A missing or wrong
value raises ConfirmationRequired / SignOffRequired before anything is changed; nothing here
ever calls sys.exit (papermill counts `sys.exit(0)` as success).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from runbook_lib.errors import ConfirmationRequired, SignOffRequired
from runbook_lib.platform.cleanup_confirm import FORM
from runbook_lib.run.display import in_kernel

# Set by the runner in each phase's kernel: no widget is shown, values come from parameters.
HEADLESS_ENV = "RUNBOOK_HEADLESS"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def interactive() -> bool:
    """Return whether a person can answer a widget (a Jupyter kernel, not a headless run)."""
    return not os.environ.get(HEADLESS_ENV) and in_kernel()


def _display(*widgets) -> None:
    from IPython.display import display

    display(*widgets)


class Confirmation:
    """Holds the typed confirmation for one plan; the widget (if any) writes into `.value`."""

    def __init__(self, expected_token: str, given: str = "", source: str = ""):
        # `source`: where `given` came from (command line, params file, notebook default); a
        # value typed into the form replaces it and its source becomes "form".
        self.expected_token = expected_token
        self.value = (given or "").strip()
        self.source = source
        self.at = _now() if self.value else None

    def show(self) -> Confirmation:
        """Display a text box and a button that stores what was typed into `.value`."""
        import ipywidgets as w

        text = w.Text(placeholder="type the confirmation exactly", layout=w.Layout(width="70%"))
        button = w.Button(description="Confirm", button_style="danger")
        status = w.HTML(f"To go on, type exactly: <code>{self.expected_token}</code>")

        def on_click(_):
            self.value, self.at, self.source = text.value.strip(), _now(), FORM
            ok = self.value == self.expected_token
            status.value = (
                "Recorded. Run the next cell."
                if ok
                else f"That does not match <code>{self.expected_token}</code>."
            )

        button.on_click(on_click)
        _display(status, w.HBox([text, button]))
        return self


def ask_confirmation(expected_token: str, given: str = "", source: str = "") -> Confirmation:
    """Return a holder for the confirmation; show the form when a person can answer it."""
    holder = Confirmation(expected_token, given, source)
    if not holder.value and interactive():
        holder.show()
    return holder


def confirm(expected_token: str, given: str | Confirmation | None) -> str:
    """Return the token when `given` equals it exactly; else raise ConfirmationRequired."""
    value = given.value if isinstance(given, Confirmation) else (given or "")
    value = str(value).strip()
    if value != expected_token:
        raise ConfirmationRequired(expected_token, value or None)
    return value


class Approvals:
    """Holds sign-offs (item -> name and time); widgets write into it when shown."""

    def __init__(self, items: list[str], given: dict | list | None = None):
        self.items = list(items)
        self.signed: dict[str, dict] = {}
        for item, entry in _normalise(given).items():
            if item in self.items and entry["name"]:
                self.signed[item] = entry

    @property
    def missing(self) -> list[str]:
        """Return the items nobody has signed yet."""
        return [i for i in self.items if i not in self.signed]

    def show(self) -> Approvals:
        """Display a checkbox and a name field per open item."""
        import ipywidgets as w

        rows = [w.HTML("Tick each item you have done and type your name:")]
        for item in self.missing:
            box = w.Checkbox(description=item, indent=False, layout=w.Layout(width="55%"))
            name = w.Text(placeholder="your name")
            box.observe(self._on_change(item, box, name), names="value")
            name.observe(self._on_change(item, box, name), names="value")
            rows.append(w.HBox([box, name]))
        _display(w.VBox(rows))
        return self

    def _on_change(self, item: str, box, name):
        def handler(_):
            if box.value and name.value.strip():
                self.signed[item] = {"item": item, "name": name.value.strip(), "at": _now()}
            else:
                self.signed.pop(item, None)

        return handler

    def require(self, phase: Any = None) -> list[dict]:
        """Return the sign-offs; raise SignOffRequired naming open items. Record them in `phase`."""
        if self.missing:
            raise SignOffRequired(self.missing)
        entries = [self.signed[i] for i in self.items]
        if phase is not None:  # the phase adds who is authenticated next to each typed name
            entries = [phase.sign_off(e["item"], e["name"], e["at"]) for e in entries]
        return entries


def _normalise(given: dict | list | None) -> dict[str, dict]:
    """Accept {item: name}, {item: {name, at}} or [{item, name, at}] from parameters."""
    out: dict[str, dict] = {}
    if isinstance(given, dict):
        for item, v in given.items():
            name, at = (v.get("name"), v.get("at")) if isinstance(v, dict) else (v, None)
            out[str(item)] = {
                "item": str(item),
                "name": str(name or "").strip(),
                "at": at or _now(),
            }
    elif isinstance(given, list):
        for v in given:
            out[str(v["item"])] = {
                "item": str(v["item"]),
                "name": str(v.get("name") or "").strip(),
                "at": v.get("at") or _now(),
            }
    return out


def approvals(items: list[str], given: dict | list | None = None) -> Approvals:
    """Return a sign-off holder for `items`; show the form for open items when interactive."""
    holder = Approvals(items, given)
    if holder.missing and interactive():
        holder.show()
    return holder
