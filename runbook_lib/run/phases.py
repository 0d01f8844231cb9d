"""Which phase notebooks a run executes, and the strict parameter contract each one must meet.

(phase.py is the API a notebook calls from inside; this module is the runner's view of the
notebooks from outside.) A parameter the notebook does not declare is an error naming the phase
and the key, not papermill's warning, and it is raised before the run has any side effect.
"""

from __future__ import annotations

from pathlib import Path

from runbook_lib import paths
from runbook_lib.errors import ParamsError
from runbook_lib.run.params import Params


def phase_notebooks(notebooks_dir: Path | None = None) -> list[Path]:
    """Return the chain's notebooks: `NN_*.ipynb` with NN < 90, in order."""
    folder = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if int(p.name[:2]) < 90)


def select_phases(available: list[Path], phases: list[str] | None) -> list[Path]:
    """Return the notebooks `phases` names (`01_code_deployment`, `01` or `code_deployment`)."""
    if not phases:
        return available
    chosen = []
    for want in phases:
        hits = [p for p in available if p.stem == want or p.stem[:2] == want or p.stem[3:] == want]
        if not hits:
            raise ParamsError(
                "--phases",
                want,
                "names no phase notebook",
                f"use one of {', '.join(p.stem for p in available)}",
            )
        chosen += [h for h in hits if h not in chosen]
    return sorted(chosen)


def check_phase_keys(params: Params, notebooks_dir: Path) -> None:
    """Raise ParamsError for a `phases.<name>` params key that names no phase notebook."""
    known = {p.stem for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb")}
    for name in params.phases:
        if name not in known:
            raise ParamsError(
                params.source,
                f"phases.{name}",
                "names no phase notebook",
                f"use one of {', '.join(sorted(known))}",
            )


def phase_parameters(params: Params, run_dir: Path, name: str, extra: dict | None = None) -> dict:
    """Return what phase `name` is run with: env, run_dir, today, its params phases.<name>."""
    base = {
        "env": params.env,
        "run_dir": str(run_dir),
        "today": params.effective_today().isoformat(),
    }
    return {**base, **params.phases.get(name, {}), **(extra or {})}


def check_parameters(nb_path: Path, supplied: dict) -> None:
    """Raise ParamsError naming phase and key for any parameter the notebook does not declare."""
    import papermill as pm

    declared = pm.inspect_notebook(str(nb_path))
    for key in supplied:
        if key not in declared:
            raise ParamsError(
                f"notebooks/{nb_path.name}",
                key,
                "is not a parameter this phase declares"
                + ("" if declared else " (it has no cell tagged 'parameters')"),
                f"declare `{key} = ...` in its parameters cell or remove it from "
                f"params phases.{nb_path.stem}",
            )
