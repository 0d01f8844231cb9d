"""The in-notebook API: what every phase notebook opens, records into, checks with and finishes.

A phase notebook's parameters cell declares `env`, `run_dir` and `today`; the next cell calls
`open_phase(...)`. Everything the phase measures goes through `record` and `check`, and is
written to `<run_dir>/results/<phase>.json` (`<phase>.attemptN.json` for attempt N > 1) after
every call (so a phase that dies half-way still leaves what it did). Destructive steps write
their intent and outcome to the attempt's journal (`phase.journal`, journal.py) before and
after acting. Only `finish()` marks the results file SUCCEEDED; the runner accepts nothing
else as proof that the phase ran to its end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook_lib import paths
from runbook_lib.clock import now_iso
from runbook_lib.errors import VerificationFailedError
from runbook_lib.log_capture import CapturedLog, capture_logs
from runbook_lib.run import display, phase_view
from runbook_lib.run.archive import JOURNAL, RESULTS, attempt_file, attempts_on_disk, next_attempt
from runbook_lib.run.journal import Journal
from runbook_lib.run.params import Params, load_params
from runbook_lib.statuses import PhaseStatus

if TYPE_CHECKING:
    import pandas as pd

    from runbook_lib.platform.schema import Tables
    from runbook_lib.warehouse.base import Warehouse

log = logging.getLogger(__name__)

# The runner hands `--set` overrides to each phase's kernel through this variable, so the
# notebook parameter contract stays env/run_dir/today and secrets never sit in a notebook.
OVERRIDES_ENV = "RUNBOOK_OVERRIDES"
# The runner tells each phase kernel which attempt it runs (its results and journal files).
ATTEMPT_ENV = "RUNBOOK_ATTEMPT"
STANDALONE = "standalone"
# Where finish() in an interactive run leaves its request to be sealed (under the working dir).
SEAL_REQUESTS = ".seal"


def to_jsonable(value: Any) -> Any:
    """Return `value` as plain JSON data: dates as ISO strings, DataFrames as records."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value else None  # NaN is not JSON
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [to_jsonable(v) for v in items]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if hasattr(value, "model_dump"):  # pydantic models
        return to_jsonable(value.model_dump())
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # pandas DataFrame
        return [to_jsonable(r) for r in value.to_dict(orient="records")]
    if hasattr(value, "to_dict"):  # pandas Series
        return to_jsonable(value.to_dict())
    if hasattr(value, "item"):  # numpy scalars
        return to_jsonable(value.item())
    if hasattr(value, "isoformat"):  # pandas Timestamp and friends
        return value.isoformat()
    return str(value)


def detail_text(detail: Any) -> str:
    """Return a check's detail as text: strings as they are, anything else as JSON data.

    str() of a dataclass or a date gives `GitState(...)` or `datetime.date(2023, 2, 25)`;
    through to_jsonable a date reads 2023-02-25 and a dataclass as its fields.
    """
    value = to_jsonable(detail)
    return value if isinstance(value, str) else json.dumps(value, default=str)


class Phase:
    """One phase of a run (or a standalone notebook session): params, results and checks."""

    def __init__(
        self,
        name: str,
        params: Params,
        run_dir: Path,
        run_id: str,
        today_source: str = "",
        attempt: int = 1,
    ):
        self.name, self.params, self.run_dir, self.run_id = name, params, run_dir, run_id
        self.today_source = today_source or f"the params ({params.source})"
        self.attempt = attempt
        self.results: dict[str, Any] = {}
        self.checks: list[dict] = []
        self.started_at = now_iso()
        self.finished = False
        self._write(PhaseStatus.RUNNING)

    # -- what the notebook reads ----------------------------------------------------------
    @property
    def env(self) -> str:
        """Return the environment name."""
        return self.params.env

    @property
    def today(self) -> dt.date:
        """Return the date every cutoff of this phase is computed from."""
        return self.params.effective_today()

    @property
    def tables(self) -> Tables:
        """Return the environment's declared tables."""
        return self.params.tables

    @cached_property
    def wh(self) -> Warehouse:
        """Return the environment's warehouse, connected on first use.

        Refused (LockHeldError) while another run holds the warehouse's lock; inside the run
        that holds it, the lock is recognised as this phase's own.
        """
        from runbook_lib.run import lock
        from runbook_lib.warehouse import connect

        wh = connect(self.params, run_id=self.run_id)
        lock.check_writer(self.params, self.run_id, wh)
        return wh

    @property
    def results_path(self) -> Path:
        """Return the results file this phase attempt writes."""
        return self.run_dir / attempt_file(self.name, self.attempt, RESULTS)

    @cached_property
    def journal(self) -> Journal:
        """Return this attempt's journal: destructive steps record intent and outcome in it."""
        return Journal(self.run_dir / attempt_file(self.name, self.attempt, JOURNAL))

    @property
    def backup_suffix(self) -> str:
        """Return what this attempt's backups are named by: the run and the attempt.

        A second cleanup in one run (attempt 2) or in another run never meets an existing
        backup (TableExistsError). Standalone sessions add the UTC time, since their folder
        is shared and may be deleted.
        """
        if self.run_id == STANDALONE:
            return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}_{STANDALONE}_a{self.attempt}"
        return f"{self.run_id}_a{self.attempt}"

    # -- what the notebook writes ---------------------------------------------------------
    def record(self, key: str, value: Any) -> Any:
        """Store a result under `key` (JSON-serialised) and return the value for display."""
        self.results[key] = to_jsonable(value)
        self._write(PhaseStatus.RUNNING)
        return value

    def parameter_source(self, key: str) -> str:
        """Return where this phase's parameter `key` came from.

        "command line" for a `--set phases.<phase>.<key>=...` of this run (the manifest header
        records it as an override), "params file" for a value under `phases.<phase>` of the
        params file, else "notebook default".
        """
        from runbook_lib.platform.cleanup_confirm import (
            COMMAND_LINE,
            NOTEBOOK_DEFAULT,
            PARAMS_FILE,
        )

        overrides = run_overrides() if self.run_id != STANDALONE else {}
        nested = overrides.get(f"phases.{self.name}")
        if f"phases.{self.name}.{key}" in overrides or (isinstance(nested, dict) and key in nested):
            return COMMAND_LINE
        if key in self.params.phases.get(self.name, {}):
            return PARAMS_FILE
        return NOTEBOOK_DEFAULT

    def check(self, name: str, ok: bool, detail: Any = "") -> bool:
        """Record a named check; return whether it passed (failed checks fail the phase)."""
        ok = bool(ok)
        self.checks.append({"check": name, "ok": ok, "detail": detail_text(detail), "at": now_iso()})
        self._write(PhaseStatus.RUNNING)
        (log.info if ok else log.error)("check %s: %s %s", name, "ok" if ok else "FAILED", detail)
        return ok

    @cached_property
    def signer(self) -> str:
        """Return the authenticated identity sign-offs record (credentials' account; OS user)."""
        from runbook_lib.run.identity import signer_identity

        return signer_identity(self.params)

    def sign_off(self, item: str, name: str, at: str | dt.datetime | None = None) -> dict:
        """Record a sign-off of `item` by `name` (now when `at` is not given) and who is signed in.

        The typed name is a claim; `identity` beside it is the account the run is authenticated
        as (the Google credentials' account outside local, the OS user on local).
        """
        if not str(name).strip():
            raise ValueError(f"sign-off of {item!r} needs the name of the person signing")
        entry = {"item": item, "name": str(name).strip(), "at": to_jsonable(at) or now_iso(),
                 "identity": self.signer}  # fmt: skip
        self.results.setdefault("approvals", []).append(entry)
        self._write(PhaseStatus.RUNNING)
        return entry

    @contextmanager
    def capture_logs(self, *prefixes: str, level: int = logging.INFO) -> Iterator[CapturedLog]:
        """Collect the log lines of loggers whose name starts with a prefix (default runbook)."""
        # On the root: library loggers inherit its WARNING level in a kernel, lowered for the block.
        with capture_logs("", prefixes or ("runbook",), level) as captured:
            yield captured

    def checks_table(self) -> pd.DataFrame:
        """Return the checks run so far as a table."""
        import pandas as pd

        return pd.DataFrame(self.checks, columns=["check", "ok", "detail", "at"])

    def finish(self) -> None:
        """End the phase: write its results, show its checks; raise if one failed or none ran."""
        failed = [c["check"] for c in self.checks if not c["ok"]]
        status = PhaseStatus.SUCCEEDED if self.checks and not failed else PhaseStatus.FAILED
        self.finished = True
        self._write(status)
        sealing = self._request_seal()
        from IPython.display import display as show

        show(phase_view.summary(self, status))
        if sealing:
            print(sealing)
        if not self.checks:
            raise VerificationFailedError(
                f"phase {self.name} ran zero checks, and zero checks run is a failure "
                f"(to fix this, make the notebook call phase.check(...) for what it verifies)"
            )
        if failed:
            raise VerificationFailedError(
                f"phase {self.name}: {len(failed)} of {len(self.checks)} checks failed: "
                f"{', '.join(failed)} (to fix this, read the failed checks above, fix the "
                f"cause, then rerun the phase or `runbook resume` the run)"
            )

    def _request_seal(self) -> str | None:
        """In an interactive run, ask `runbook lab` to seal this phase once its notebook is saved.

        The kernel cannot see the notebook JupyterLab shows; the lab process archives the
        working copy as soon as a save holds the line printed here (its time makes it unique).
        """
        from runbook_lib.run.interact import lab_run
        from runbook_lib.run.manifest import WORKING_DIR

        if not lab_run() or self.run_id == STANDALONE:
            return None
        request = self.run_dir / WORKING_DIR / SEAL_REQUESTS / f"{self.name}.json"
        request.parent.mkdir(parents=True, exist_ok=True)
        line = (
            f"sealing (asked {now_iso()}): this notebook is archived into run {self.run_id} as soon "
            f"as it is saved (autosave does it within seconds; File > Save Notebook to hurry)"
        )
        request.write_text(json.dumps({"phase": self.name, "line": line}))
        return line

    def _write(self, status: str) -> None:
        doc = {
            "phase": self.name,
            "env": self.env,
            "run_id": self.run_id,
            "attempt": self.attempt,
            "status": status,
            "today": self.today.isoformat(),
            "started_at": self.started_at,
            "finished_at": now_iso() if status != PhaseStatus.RUNNING else None,
            "checks": self.checks,
            "results": self.results,
        }
        self.results_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.results_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        tmp.replace(self.results_path)  # atomic: the runner never reads half a file

    def __repr__(self) -> str:
        return repr(phase_view.header(self))

    def _repr_html_(self) -> str:
        return phase_view.header(self)._repr_html_()


def run_overrides() -> dict:
    """Return the params overrides the runner passed to this kernel (none when standalone)."""
    raw = os.environ.get(OVERRIDES_ENV)
    return json.loads(raw) if raw else {}


def open_phase(name: str, env: str = "local", run_dir: str = "", today: str = "") -> Phase:
    """Open a phase: load params (with `today` override), bind the run dir, start recording.

    With an empty `run_dir` the notebook runs standalone and writes its results to
    `outputs/<env>/standalone/results/<name>[.attemptN].json`. The attempt is the runner's
    (RUNBOOK_ATTEMPT), else the next one the folder has not seen.
    """
    display.setup_kernel()
    base = run_overrides() if run_dir else {}
    overrides = {**base, "today": str(today)} if today else base
    params = load_params(env, overrides or None)
    if run_dir:
        folder = paths.resolve(run_dir)
        run_id = folder.name
    else:
        folder = paths.OUTPUTS_DIR / params.env / STANDALONE
        run_id = STANDALONE
    source = phase_view.today_source(
        params, load_params(env, base or None), today, run_dir, set_for_run="today" in base
    )
    given = os.environ.get(ATTEMPT_ENV)
    attempt = int(given) if given else next_attempt(folder, name)
    return Phase(name, params, folder, run_id, today_source=source, attempt=attempt)


def read_results(run_dir: Path, phase: str, attempt: int | None = None) -> dict | None:
    """Return a phase attempt's results document (default: the latest attempt's), or None."""
    if attempt is None:
        written = [n for n in attempts_on_disk(run_dir, phase)
                   if (Path(run_dir) / attempt_file(phase, n, RESULTS)).exists()]
        attempt = max(written, default=1)
    path = Path(run_dir) / attempt_file(phase, attempt, RESULTS)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
