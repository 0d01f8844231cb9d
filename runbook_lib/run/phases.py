"""Which phase notebooks a run executes, and the strict parameter contract each one must meet.

(phase.py is the API a notebook calls from inside; this module is the runner's view of the
notebooks from outside.) A parameter the notebook does not declare, or whose value has another
type than the declared default, is an error naming the phase and the key, not papermill's
warning or an AttributeError deep in the notebook, and it is raised before the run has any side
effect. Outside `local`, no later phase runs without the pre-flight phase 00.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from runbook_lib import paths
from runbook_lib.errors import ParamsError
from runbook_lib.run.params import Params


def phase_notebooks(notebooks_dir: Path | None = None) -> list[Path]:
    """Return the chain's notebooks: `NN_*.ipynb` with NN < 90, in order."""
    folder = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if int(p.name[:2]) < 90)


def select_phases(
    available: list[Path], phases: list[str] | None, source: str = "--phases"
) -> list[Path]:
    """Return the notebooks `phases` names (`01_code_deployment`, `01` or `code_deployment`)."""
    if not phases:
        return available
    chosen = []
    for want in phases:
        hits = [p for p in available if p.stem == want or p.stem[:2] == want or p.stem[3:] == want]
        if not hits:
            raise ParamsError(
                source,
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
    """Raise ParamsError naming phase and key for an undeclared or mistyped parameter."""
    import papermill as pm

    declared = pm.inspect_notebook(str(nb_path))
    for key, value in supplied.items():
        if key not in declared:
            raise ParamsError(
                f"notebooks/{nb_path.name}",
                key,
                "is not a parameter this phase declares"
                + ("" if declared else " (it has no cell tagged 'parameters')"),
                f"declare `{key} = ...` in its parameters cell or remove it from "
                f"params phases.{nb_path.stem}",
            )
        _check_type(nb_path, key, value, declared[key])


_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def declared_type(spec: dict) -> type | None:
    """Return the type a papermill parameter spec declares (annotation, else its default's)."""
    if spec.get("inferred_type_name") in _TYPES:
        return _TYPES[spec["inferred_type_name"]]
    try:
        default = ast.literal_eval(spec.get("default") or "None")
    except (ValueError, SyntaxError):
        return None  # an expression default: nothing to compare against
    return type(default) if type(default) in _TYPES.values() else None


def _fits(value, expected: type) -> bool:
    if isinstance(value, bool):  # bool is an int in Python, never in a parameters cell
        return expected is bool
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def yaml_text(value) -> str:
    """Return `value` as YAML writes a plain scalar (True as true, None as null)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


_EXAMPLES = {bool: "false", int: "1", float: "0.5", list: "[]", dict: "{}"}


def _check_type(nb_path: Path, key: str, value, spec: dict) -> None:
    expected = declared_type(spec)
    # `dry_run: bool = None`: the annotation is the type, None the "not given" default.
    if expected is None or _fits(value, expected) or (value is None and spec.get("default") == "None"):
        return
    dotted = f"phases.{nb_path.stem}.{key}"
    if expected is str:
        text = yaml_text(value)
        fix = (
            f"quote the value so YAML keeps it a string: --set {dotted}=\"'{text}'\", or "
            f"{key}: '{text}' under phases.{nb_path.stem} in the params file (YAML reads yes, "
            f"no, on, off, true, null and numbers as other types)"
        )
    else:
        example = spec["default"] if spec["default"] != "None" else _EXAMPLES.get(expected, "...")
        fix = f"give a value of type {expected.__name__}, e.g. --set {dotted}={example}"
    raise ParamsError(
        f"notebooks/{nb_path.name}",
        dotted,
        f"phase {nb_path.stem} declares {key} as {expected.__name__} (default "
        f"{spec.get('default')}) but was given {type(value).__name__} {value!r}",
        fix,
    )


PREFLIGHT = "00_"  # the pre-flight phase is number 00


def require_preflight(params: Params, phases: list[str], done: set[str], source: str) -> None:
    """Outside local, refuse phases after 00 unless 00 runs too or already SUCCEEDED in the run."""
    if params.is_local:
        return
    later = [p for p in phases if not p.startswith(PREFLIGHT)]
    has_preflight = any(p.startswith(PREFLIGHT) for p in [*phases, *done])
    if later and not has_preflight:
        raise ParamsError(
            source,
            " ".join(phases),
            f"on {params.env}, a run that includes a phase after 00 ({', '.join(later)}) must "
            f"include 00_preflight: the pre-flight checks and sign-offs guard every later, "
            f"possibly destructive, phase",
            "add 00 to --phases (e.g. --phases 00 02), or `runbook resume` a run whose "
            "00_preflight SUCCEEDED",
        )
