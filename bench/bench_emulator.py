"""The whole runbook on the emulator against the same run on local, per phase; the seed's load rate.

In a temporary project root (the real notebooks, params with a free port): `runbook emulator
start`, `runbook seed --env emulator` (load jobs: rows per second over the rows it loads), `runbook
run --env emulator`, `runbook emulator stop`; then `runbook seed --env local` and `runbook run --env
local`. Each phase's seconds come from the runs' manifests.

    .venv/bin/python bench/bench_emulator.py
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = [sys.executable, "-c", "import sys; from runbook_lib.cli import main; sys.exit(main())"]
# What the seed loads with load jobs: schedule, PGS, UPCG, UTCG (PSZA and TDZA are built by SQL).
LOADED = ("schedule_games", "pgs_rows", "upcg_rows", "utcg_rows")


def _root(folder: Path) -> Path:
    (folder / "notebooks").symlink_to(ROOT / "notebooks")
    (folder / "params").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for source in (ROOT / "params").glob("*.yaml"):
        text = source.read_text().replace("127.0.0.1:9050", f"127.0.0.1:{port}")
        (folder / "params" / source.name).write_text(text)
    return folder


def runbook(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    """Run `runbook ARGS` against `root`; return its wall time and the finished process."""
    env = {**os.environ, "RUNBOOK_ROOT": str(root), "RUNBOOK_PARAMS_DIR": str(root / "params")}
    t0 = time.perf_counter()
    done = subprocess.run([*RUNBOOK, *args], env=env, cwd=root, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"runbook {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr}")
    return time.perf_counter() - t0, done


def phase_seconds(root: Path, env: str) -> dict[str, float]:
    [manifest] = (root / "outputs" / env).glob("*/manifest.json")
    records = json.loads(manifest.read_text())["records"]
    return {r["phase"]: r["seconds"] for r in records if r.get("seconds") is not None}


def loaded_rows(seed_output: str) -> int:
    return sum(
        int(re.search(rf"{k}\s+([\d,]+)", seed_output).group(1).replace(",", "")) for k in LOADED
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp:
        root = _root(Path(tmp))
        start_s, _ = runbook(root, "emulator", "start", "--env", "emulator")
        try:
            seed_s, seeded = runbook(root, "seed", "--env", "emulator")
            emulator_run_s, _ = runbook(root, "run", "--env", "emulator")
        finally:
            runbook(root, "emulator", "stop", "--env", "emulator")
        local_seed_s, _ = runbook(root, "seed", "--env", "local")
        local_run_s, _ = runbook(root, "run", "--env", "local")
        rows = loaded_rows(seeded.stdout)
        print(f"emulator start: {start_s:.1f} s")
        print(f"seed: emulator {seed_s:.1f} s ({rows:,} rows by load jobs, "
              f"{rows / seed_s:,.0f} rows/s end to end), local {local_seed_s:.1f} s")  # fmt: skip
        print(f"whole run: emulator {emulator_run_s:.1f} s, local {local_run_s:.1f} s")
        emulator, local = phase_seconds(root, "emulator"), phase_seconds(root, "local")
        print(f"{'phase':<22}{'emulator s':>12}{'local s':>10}")
        for phase in sorted(set(emulator) | set(local)):
            print(f"{phase:<22}{emulator.get(phase, 0):>12.1f}{local.get(phase, 0):>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
