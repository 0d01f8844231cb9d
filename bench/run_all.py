"""Run every benchmark in this folder, one after the other, printing their figures.

    .venv/bin/python bench/run_all.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ["bench_seed.py", "--runs", "3"],
    ["bench_coverage_query.py", "--runs", "20"],
    ["bench_backfill.py", "--sample", "40"],
    ["bench_cleanup.py", "--runs", "5"],
    ["bench_run.py", "--skip-cli"],
    ["bench_safeguard_tests.py", "--runs", "3", "--forked"],
    ["bench_kernel_ready.py", "--runs", "3"],
    ["bench_cli_exit.py", "--runs", "5"],
    ["bench_function.py", "--runs", "5"],
    ["bench_lab.py", "--runs", "2"],
    ["bench_monitor.py", "--runs", "20"],
    ["bench_emulator.py"],
]


def main() -> int:
    """Run each bench in a fresh process; return non-zero if any of them failed."""
    failed = []
    for script, *args in BENCHES:
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script), *args], check=False).returncode:
            failed.append(script)
    print(f"\n{len(BENCHES) - len(failed)} of {len(BENCHES)} benchmarks ran; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
