"""Wall time of a full local run against the same work done directly, and a papermill CLI chain.

Four ways to execute the same phase notebooks on a freshly seeded local warehouse:
1. `runner.run` (what `runbook run --env local` calls): papermill's Python API, one process,
   a fresh kernel per phase started while the previous phase runs, forked from the run's fork
   server (RUNBOOK_FORK_KERNELS=0 in the environment launches each from an interpreter);
2. the same run as the command a user types, `runbook run --env local` (a process of its own,
   its start-up and exit included);
3. direct: every notebook's code cells exec'd in this one Python process (no kernel, no
   papermill, no display of results), the same library work;
4. one `papermill` CLI call per phase (a new Python process and kernel each), the comparison.
Overhead per phase = (run - direct) / phases. Targets on 2 cores: run <= 15 s, overhead <= 0.7 s.
It prints each phase's seconds (the run's record, and direct) as the per-phase profile.

    .venv/bin/python bench/bench_run.py [--phases 00 01 ...] [--skip-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runbook_lib import paths  # noqa: E402
from runbook_lib.run import runner  # noqa: E402
from runbook_lib.run.phase import OVERRIDES_ENV  # noqa: E402
from runbook_lib.run.phases import phase_notebooks, select_phases  # noqa: E402


def _seed(folder: Path) -> dict:
    from runbook_lib.platform.league import seed_league
    from runbook_lib.run.params import load_params
    from runbook_lib.warehouse import connect

    overrides = {"warehouse_dir": str(folder / "wh"), "backfill.checkpoint_dir": str(folder / "ck")}
    params = load_params("local", overrides)
    seed_league(connect(params), params.tables, params.effective_today())
    return overrides


def _fresh(base: Path, seeded: Path, name: str) -> tuple[Path, dict]:
    """Copy the seeded warehouse into a new folder; return it and its overrides."""
    folder = base / name
    shutil.copytree(seeded / "wh", folder / "wh")
    return folder, {
        "warehouse_dir": str(folder / "wh"),
        "backfill.checkpoint_dir": str(folder / "ck"),
    }


def time_runner(folder: Path, overrides: dict, phases) -> tuple[float, str, dict[str, float]]:
    """Return wall time, status and each executed phase's seconds (its record's) of runner.run."""
    t0 = time.perf_counter()
    try:
        result = runner.run("local", phases=phases, out_root=folder / "out", overrides=overrides)
        status, records = "SUCCEEDED", result.records
    except Exception as e:  # noqa: BLE001 - a bench reports a failed run, it does not hide it
        status, records = f"FAILED: {e}", getattr(getattr(e, "result", None), "records", [])
    seconds = {r["phase"]: r["seconds"] or 0.0 for r in records if r["status"] != "SKIPPED"}
    return time.perf_counter() - t0, status, seconds


def time_runbook_cli(folder: Path, overrides: dict, phases=None) -> tuple[float, str]:
    """Run `runbook run --env local` as a user types it (what `make run` runs), start to exit.

    The project root is a folder of its own (RUNBOOK_ROOT: the notebooks and params linked, the
    outputs its own), so the bench leaves no run in the checkout's outputs.
    """
    root = folder / "root"
    root.mkdir()
    for name in ("notebooks", "params"):
        (root / name).symlink_to(ROOT / name)
    cmd = [str(Path(sys.executable).parent / "runbook"), "run", "--env", "local"]
    cmd += ["--phases", *phases] if phases else []
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "RUNBOOK_ROOT": str(root)}
    env.pop("RUNBOOK_PARAMS_DIR", None)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    status = "SUCCEEDED" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
    return seconds, status


def time_direct(
    folder: Path, overrides: dict, notebooks: list[Path]
) -> tuple[float, str, dict[str, float]]:
    """Exec every notebook's code cells in this process with the run's parameters."""
    import matplotlib

    matplotlib.use("Agg")
    os.environ[OVERRIDES_ENV] = json.dumps(overrides)
    run_dir = folder / "direct"
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    try:
        for nb in notebooks:
            started = time.perf_counter()
            cells = json.loads(nb.read_text())["cells"]
            ns = {"__name__": "__main__"}
            for cell in cells:
                if cell["cell_type"] != "code":
                    continue
                src = "".join(cell["source"])
                exec(compile(_strip_magics(src), str(nb), "exec"), ns)
                if "parameters" in cell.get("metadata", {}).get("tags", []):
                    ns.update(env="local", run_dir=str(run_dir), today="")
            seconds[nb.stem] = time.perf_counter() - started
        status = "SUCCEEDED"
    except Exception as e:  # noqa: BLE001
        status = f"FAILED in {nb.name}: {type(e).__name__}: {e}"
    finally:
        os.environ.pop(OVERRIDES_ENV, None)
    return time.perf_counter() - t0, status, seconds


def _strip_magics(src: str) -> str:
    return "\n".join(
        "pass" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines()
    )


def time_cli(folder: Path, overrides: dict, notebooks: list[Path]) -> tuple[float, str]:
    """Run one papermill CLI process per phase, as a shell script would."""
    env = {**os.environ, OVERRIDES_ENV: json.dumps(overrides)}
    run_dir = folder / "cli"
    run_dir.mkdir()
    t0 = time.perf_counter()
    for nb in notebooks:
        cmd = [
            str(Path(sys.executable).parent / "papermill"),
            str(nb),
            str(run_dir / nb.name),
            "-p",
            "env",
            "local",
            "-p",
            "run_dir",
            str(run_dir),
            "--no-progress-bar",
            "-k",
            "python3",
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            return time.perf_counter() - t0, f"FAILED in {nb.name} (exit {done.returncode})"
    return time.perf_counter() - t0, "SUCCEEDED"


def _print_profile(run: dict[str, float], direct: dict[str, float]) -> None:
    """Print each phase's seconds in the run (its record) and direct, and their difference."""
    print(f"{'phase':<22}{'run s':>8}{'direct s':>10}{'diff s':>8}")
    for name, secs in run.items():
        d = direct.get(name)
        diff = f"{secs - d:8.2f}" if d is not None else f"{'':>8}"
        print(f"{name:<22}{secs:8.2f}{(d if d is not None else float('nan')):10.2f}{diff}")


def main() -> None:
    """Print the three wall times and the overhead per phase."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--phases", nargs="+")
    ap.add_argument("--skip-cli", action="store_true")
    args = ap.parse_args()
    notebooks = select_phases(phase_notebooks(paths.NOTEBOOKS_DIR), args.phases)
    base = Path(tempfile.mkdtemp(prefix="bench_run_"))
    try:
        t0 = time.perf_counter()
        _seed(base / "seed")
        print(
            f"seed: {time.perf_counter() - t0:.2f} s; phases: {', '.join(p.stem for p in notebooks)}"
        )
        run_s, run_status, run_phases = time_runner(
            *_fresh(base, base / "seed", "run"), args.phases
        )
        print(f"runbook run (papermill API, one process): {run_s:6.2f} s  {run_status}")
        cli_run_s, cli_run_status = time_runbook_cli(
            *_fresh(base, base / "seed", "runbook"), args.phases
        )
        print(f"`runbook run --env local` (the command):  {cli_run_s:6.2f} s  {cli_run_status}")
        direct_s, direct_status, direct_phases = time_direct(
            *_fresh(base, base / "seed", "direct"), notebooks
        )
        print(f"direct (same cells, one process):         {direct_s:6.2f} s  {direct_status}")
        _print_profile(run_phases, direct_phases)
        phases = max(len(run_phases), 1)  # the phases the run executed (a failed run stops early)
        print(
            f"overhead per phase: ({run_s:.2f} - {direct_s:.2f}) / {phases} = "
            f"{(run_s - direct_s) / phases:.2f} s  (target <= 0.7 s; full run target <= 15 s)"
        )
        if not args.skip_cli:
            cli_s, cli_status = time_cli(*_fresh(base, base / "seed", "cli"), notebooks)
            print(f"papermill CLI chain:                      {cli_s:6.2f} s  {cli_status}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
