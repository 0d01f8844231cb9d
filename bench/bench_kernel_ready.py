"""How long a phase's kernel client waits before the first cell: jupyter_client's against ours.

Starts kernels as a run does (forked from a fork server where the platform can), waits until
each is up, then times `km.client()`, `start_channels()` and `wait_for_ready()` with
jupyter_client's AsyncKernelClient and with engine.ReadyClient, alternately.

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_kernel_ready.py [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nbclient.util import run_sync  # noqa: E402

from runbook_lib.run import engine  # noqa: E402

CLIENTS = {
    "jupyter_client": "jupyter_client.asynchronous.AsyncKernelClient",
    "ReadyClient": "runbook_lib.run.engine.ReadyClient",
}


def main() -> None:
    """Print each client's wait for a kernel that is already up."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    forks = engine.fork_server(engine.kernel_name(), {}, folder, [[]]) if engine.can_fork() else None
    try:
        for _ in range(args.runs):
            for name, client_class in CLIENTS.items():
                kernel = engine.start_kernel(engine.kernel_name(), "p", {}, folder, [], forks)
                time.sleep(2.5)  # up, as the next phase's kernel is when its phase starts
                kernel.km.client_class = client_class
                client = kernel.km.client()
                client.start_channels()
                t0 = time.perf_counter()
                run_sync(client.wait_for_ready)(timeout=60)
                print(f"{name:15} wait_for_ready {time.perf_counter() - t0:.3f} s ({kernel.forked})")
                client.stop_channels()
                kernel.shutdown()
    finally:
        if forks:
            forks.stop()


if __name__ == "__main__":
    main()
