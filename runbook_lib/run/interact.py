"""Confirmations and sign-offs: ipywidgets when a person is there, parameters when headless.

A notebook cell cannot block waiting for a widget, so the form's cell shows the form and stops
(`WaitingForInput`: one short line, and JupyterLab's Run All runs nothing after it). The person
answers the form, then runs the rest (Run > Run Selected Cell and All Below, or Run All again):
the form's cell finds the answer given in this kernel and goes on. In an interactive run
(`runbook lab`, which sets LAB_ENV in its kernels) the forms always show, on local too;
headless (papermill), the value comes from the notebook's parameters and no widget is shown.
A missing or wrong value raises ConfirmationRequired / SignOffRequired before anything is
changed; nothing here ever calls sys.exit (papermill counts `sys.exit(0)` as success).
"""

from __future__ import annotations

import html
import os
from typing import Any

from runbook_lib.clock import now_iso
from runbook_lib.errors import ConfirmationRequired, SignOffRequired, WaitingForInput
from runbook_lib.platform.cleanup_confirm import AUTO, FORM, split_line
from runbook_lib.run.display import in_kernel

# Set by the runner in each phase's kernel: no widget is shown, values come from parameters.
HEADLESS_ENV = "RUNBOOK_HEADLESS"
# Set by `runbook lab` in the kernels of an interactive run: a person answers every form.
LAB_ENV = "RUNBOOK_LAB"
# Answers given in this kernel, by what they answer, so re-running a form's cell goes on.
_ANSWERED: dict[tuple, Any] = {}
RUN_THE_REST = "now run the rest: Run &gt; Run Selected Cell and All Below (or Run All again)"


def interactive() -> bool:
    """Return whether a person can answer a widget (a Jupyter kernel, not a headless run)."""
    return not os.environ.get(HEADLESS_ENV) and in_kernel()


def lab_run() -> bool:
    """Return whether this kernel belongs to an interactive run that `runbook lab` started."""
    return bool(os.environ.get(LAB_ENV)) and interactive()


def who(phase: Any = None) -> str:
    """Return who is answering: the credentials' account outside local, else the OS user."""
    from runbook_lib.run import identity

    params = getattr(phase, "params", None)
    return identity.signer_identity(params) if params is not None else identity.os_user()


def _display(*widgets) -> None:
    from IPython.display import display

    display(*widgets)


def _note(text: str) -> None:
    from IPython.display import HTML

    _display(HTML(text))


class Confirmation:
    """Holds the confirmation for one plan; the form (if any) writes into it."""

    def __init__(
        self, expected_token: str, given: str = "", source: str = "", by: str | None = None
    ):
        # `source`: where `given` came from (command line, params file, notebook default); an
        # answer in the form replaces it and its source becomes "form".
        self.expected_token = expected_token
        self.value = (given or "").strip()
        self.source = source
        self.at = now_iso() if self.value else None
        self.by = by
        self.how = "parameter" if self.value else None

    @property
    def confirmed(self) -> bool:
        """Return whether what was given is the expected line (whitespace forgiven)."""
        return split_line(self.value) == split_line(self.expected_token)

    def answer(self, value: str, by: str, how: str) -> bool:
        """Store an answer from the form; remember it in this kernel when it matches."""
        self.value, self.at, self.by, self.how = value.strip(), now_iso(), by, how
        self.source = FORM
        if self.confirmed:
            _ANSWERED[("confirm", self.expected_token)] = self
        return self.confirmed

    def show(self, by: str = "", offer_plan: bool = False) -> Confirmation:
        """Display the line to type, a text box, Confirm and (on local) "use the previewed plan"."""
        import ipywidgets as w

        token = html.escape(self.expected_token)
        text = w.Textarea(
            placeholder="type the confirmation exactly", layout=w.Layout(width="90%", height="4em")
        )
        button = w.Button(description="Confirm", button_style="danger")
        status = w.HTML(
            f"To go on, type exactly:<br><code style='white-space:pre-wrap'>{token}</code>"
        )

        def done(ok: bool) -> None:
            status.value = (
                f"<b>Confirmed</b> by {html.escape(by)} at {self.at}; {RUN_THE_REST}."
                if ok
                else f"That does not match <code>{token}</code>; nothing was changed."
            )

        button.on_click(lambda _: done(self.answer(text.value, by, "typed")))
        buttons = [button]
        if offer_plan:
            plan = w.Button(
                description="Use the previewed plan",
                button_style="warning",
                layout=w.Layout(width="auto"),
            )
            plan.on_click(
                lambda _: done(
                    self.answer(
                        self.expected_token, by, "button: the previewed plan accepted (local)"
                    )
                )
            )
            buttons.append(plan)
        _display(status, text, w.HBox(buttons))
        return self


def ask_confirmation(
    expected_token: str, given: str = "", source: str = "", phase: Any = None
) -> Confirmation:
    """Return the confirmation for a plan; where a person is there, show the form and stop.

    Headless, it comes from `given` (the `confirm` parameter, read from `source`). In an
    interactive run the form always shows (on local with a "use the previewed plan" button
    where the parameter is `auto`), and the cell stops with WaitingForInput until the line is
    confirmed; elsewhere in Jupyter the form shows when nothing was given.
    """
    answered = _ANSWERED.get(("confirm", expected_token))
    if answered is not None and interactive():
        _note(f"Confirmed by {html.escape(str(answered.by))} at {answered.at} ({answered.how}).")
        return answered
    holder = Confirmation(expected_token, given, source)
    if lab_run() or (not holder.value and interactive()):
        local = phase is not None and phase.params.is_local
        Confirmation(expected_token).show(who(phase), local and holder.value == AUTO)
        raise WaitingForInput("confirm the plan")
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

    def show(self, by: str = "") -> Approvals:
        """Display a checkbox and a name field (filled with `by`) per open item."""
        import ipywidgets as w

        status = w.HTML("Tick each item you have done; the name beside it signs it:")
        rows = [status]
        for item in self.missing:
            box = w.Checkbox(description=item, indent=False, layout=w.Layout(width="55%"))
            name = w.Text(value=by, placeholder="your name")
            handler = self._on_change(item, box, name, status)
            box.observe(handler, names="value")
            name.observe(handler, names="value")
            rows.append(w.HBox([box, name]))
        _display(w.VBox(rows))
        return self

    def _on_change(self, item: str, box, name, status):
        def handler(_):
            if box.value and name.value.strip():
                self.signed[item] = {"item": item, "name": name.value.strip(), "at": now_iso()}
            else:
                self.signed.pop(item, None)
            if not self.missing:
                _ANSWERED[("signoff", tuple(self.items))] = self
                status.value = f"<b>All {len(self.items)} items signed</b>; {RUN_THE_REST}."
            else:
                status.value = f"{len(self.missing)} item(s) still open."

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
                "at": at or now_iso(),
            }
    elif isinstance(given, list):
        for v in given:
            out[str(v["item"])] = {
                "item": str(v["item"]),
                "name": str(v.get("name") or "").strip(),
                "at": v.get("at") or now_iso(),
            }
    return out


def approvals(items: list[str], given: dict | list | None = None, phase: Any = None) -> Approvals:
    """Return the sign-offs for `items`; where a person is there, show the form and stop.

    Headless they come from `given`. In an interactive run every item is signed in the form
    (on local too); elsewhere in Jupyter the form shows the items `given` left open.
    """
    answered = _ANSWERED.get(("signoff", tuple(items)))
    if answered is not None and interactive():
        names = sorted({e["name"] for e in answered.signed.values()})
        _note(f"All {len(items)} items signed by {html.escape(', '.join(names))}.")
        return answered
    holder = Approvals(items, given)
    if lab_run() or (holder.missing and interactive()):
        (Approvals(items) if lab_run() else holder).show(who(phase))
        raise WaitingForInput(f"sign the {len(items)} items")
    return holder
