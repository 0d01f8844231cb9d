"""Decide whether an executed phase notebook SUCCEEDED, and if not, say why in one line.

papermill saves a dead-kernel or timed-out notebook with no error banner and treats
`sys.exit(0)` as success, so its own verdict is not enough: every code cell must have run and
`phase.finish()` must have written this run's results file with status SUCCEEDED.
"""

from __future__ import annotations

import json
from pathlib import Path

from runbook_lib.statuses import PhaseStatus


def failure_reason(
    nb_path: Path, doc: dict | None, error: Exception | None, run_id: str, timeout: int
) -> str | None:
    """Return why a phase failed (None when it succeeded), from papermill, notebook and results."""
    if error is not None:
        return _error_text(error, timeout)
    if not nb_path.exists():
        return "no executed notebook was written"
    nb = json.loads(nb_path.read_text())
    raised = _first_error(nb)
    if raised:
        return raised
    for i, cell in enumerate(nb.get("cells", [])):
        if (
            cell.get("cell_type") == "code"
            and "".join(cell.get("source", [])).strip()
            and cell.get("execution_count") is None
        ):
            return (
                f"cell {i} never ran: the notebook stopped early without an error "
                f"(sys.exit() or a lost kernel)"
            )
    if doc is None:
        return "phase.finish() never ran: the phase wrote no results file"
    if doc.get("run_id") != run_id:
        return f"the results file belongs to run {doc.get('run_id')!r}, not this run"
    if doc.get("status") != PhaseStatus.SUCCEEDED:
        failed = [c["check"] for c in doc.get("checks", []) if not c["ok"]]
        if failed:
            return f"checks failed: {', '.join(failed)}"
        if not doc.get("checks"):
            return "zero checks ran (zero checks run is a failure)"
        return "stopped before phase.finish()"
    return None


def _first_error(nb: dict) -> str | None:
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                hint = (
                    " (a phase never ends with sys.exit: raise an error instead)"
                    if out.get("ename") == "SystemExit"
                    else ""
                )
                return f"cell {i} raised {out.get('ename')}: {out.get('evalue')}{hint}"
    if nb.get("metadata", {}).get("papermill", {}).get("exception"):
        return "a cell raised an exception"
    return None


def _error_text(error: Exception, timeout: int) -> str:
    name = type(error).__name__
    if name == "PapermillExecutionError":
        return f"cell {error.cell_index} raised {error.ename}: {error.evalue}"
    if name == "DeadKernelError":
        return "the kernel died while a cell ran (killed, out of memory, or os._exit)"
    if name == "CellTimeoutError":
        return f"a cell ran past the {timeout} s cell timeout"
    return f"{name}: {error}"
