"""How long a `runbook` process takes to end once its work is done: Python's exit against entry's.

A `runbook run` process ends holding pandas, DuckDB, jupyter_client, papermill and the library.
Each round starts two processes that import those modules, run a bad-input command (main
returns 2, nothing changes) and end: one as `sys.exit(main())` (Python frees every module on the
way out), one through `runbook_lib.cli.entry` (the console script: atexit handlers, flush, exit).
Printed: each one's wall time, start to end, and the median difference.

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_cli_exit.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADED = "import runbook_lib.run.runner, runbook_lib.run.engine, runbook_lib.run.notebook_html\n"
ENDINGS = {
    "python's exit (sys.exit(main()))": "import sys\nfrom runbook_lib.cli import main\n"
    "sys.exit(main())",
    "entry (the console script)": "from runbook_lib.cli import entry\nentry()",
}
BAD_INPUT = ["run", "--env", "no-such-env"]


def _wall(code: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LOADED + code, *BAD_INPUT], env=env, capture_output=True
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 2:
        raise SystemExit(f"expected exit 2 (bad input), got {done.returncode}: {done.stderr!r}")
    return seconds


def main() -> None:
    """Print each ending's wall times and the median difference, rounds interleaved."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    times: dict[str, list[float]] = {name: [] for name in ENDINGS}
    for _ in range(args.runs):
        for name, code in ENDINGS.items():
            times[name].append(_wall(code))
    for name, walls in times.items():
        print(
            f"{name:<36} median {statistics.median(walls):.2f} s "
            f"({min(walls):.2f}-{max(walls):.2f}), {args.runs} runs"
        )
    normal, fast = (statistics.median(w) for w in times.values())
    print(f"saved at exit: {normal - fast:.2f} s (median); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
