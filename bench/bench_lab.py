"""Interactive runs: how long until a person can work, and what stepping through costs per phase.

1. From starting `runbook lab --env local --phases 02` to (a) the URL printed (the server
   serves) and (b) phase 02 open in chromium with its kernel idle: the wait a person sees.
2. Phase 02 three ways on fresh copies of one seeded warehouse: `runner.run` headless;
   in JupyterLab driven by Playwright (Run All, "Use the previewed plan", run the rest, until the
   phase is sealed into the manifest, minus the time the bench itself spends clicking); and its
   code cells exec'd in this process (no kernel). Overhead = each wall time minus the direct one.

    .venv/bin/python bench/bench_lab.py [--runs 2]

Needs /usr/bin/chromium (`apt-get install -y chromium`) and the playwright package.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_run import _fresh, _seed, time_direct  # noqa: E402

from runbook_lib import paths  # noqa: E402
from runbook_lib.run import runner  # noqa: E402
from tests.lab_process import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

PHASE = "02_data_cleanup"


def _lab(folder: Path, overrides: dict) -> tuple[subprocess.Popen, str, Path, float]:
    """Start `runbook lab`; return it, its URL, the run dir and seconds until the URL printed."""
    (folder / "notebooks").symlink_to(paths.NOTEBOOKS_DIR)
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "RUNBOOK_ROOT": str(folder), "RUNBOOK_PARAMS_DIR": str(paths.PARAMS_DIR)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "runbook"),
            "lab",
            "--env",
            "local",
            "--phases",
            "02",
            *sets,
        ],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    run_dir = None
    for line in proc.stdout:
        if m := re.match(r"run \S+: working copies in (\S+)", line):
            run_dir = Path(m.group(1)).parent
        if line.startswith("JupyterLab: "):
            return proc, line.split(" ", 1)[1].strip(), run_dir, time.perf_counter() - t0
    raise RuntimeError(f"runbook lab printed no URL (exit {proc.wait()})")


def _sealed(run_dir: Path) -> bool:
    records = json.loads((run_dir / "manifest.json").read_text())["records"]
    return any(r.get("mode") == "interactive" for r in records)


def time_lab(folder: Path, overrides: dict) -> dict:
    """Return the seconds to URL, to a ready notebook, and of phase 02 stepped through."""
    from playwright.sync_api import sync_playwright

    t0 = time.perf_counter()
    proc, url, run_dir, to_url = _lab(folder, overrides)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_text(re.compile(r"\| Idle")).wait_for(timeout=120_000)
            ready = time.perf_counter() - t0
            t1 = time.perf_counter()
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
            page.get_by_text("Paused: confirm the plan").wait_for(timeout=120_000)
            until_form = time.perf_counter() - t1
            form = page.locator(".jp-Notebook .jp-CodeCell", has_text="ask_confirmation(").first
            form.get_by_role("button", name="Use the previewed plan").click()
            form.get_by_text("Confirmed").first.wait_for()
            form.locator(".jp-InputPrompt").click()
            t2 = time.perf_counter()
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
            page.locator(
                ".lm-Menu-itemLabel", has_text=re.compile("^Run Selected Cell and All Below$")
            ).click()
            while not _sealed(run_dir):
                time.sleep(0.1)
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return {"url": to_url, "ready": ready, "phase": until_form + time.perf_counter() - t2}


def time_headless(folder: Path, overrides: dict) -> float:
    """Return the wall time of phase 02 run headless by runner.run (it must succeed)."""
    t0 = time.perf_counter()
    runner.run("local", phases=["02"], out_root=folder / "out", overrides=overrides)
    return time.perf_counter() - t0


def main() -> int:
    """Print the lab's start-up figures and phase 02's overhead, interactive vs headless."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    if not CHROMIUM.exists():
        print("skipped: no /usr/bin/chromium (apt-get install -y chromium fonts-noto-color-emoji)")
        return 0
    base = Path(tempfile.mkdtemp(prefix="bench_lab_"))
    _seed(base / "seed")
    nb = paths.NOTEBOOKS_DIR / f"{PHASE}.ipynb"
    rows = []
    for i in range(args.runs):
        lab = time_lab(*_fresh(base, base / "seed", f"lab{i}"))
        headless = time_headless(*_fresh(base, base / "seed", f"headless{i}"))
        direct, status = time_direct(*_fresh(base, base / "seed", f"direct{i}"), [nb])
        rows.append({**lab, "headless": headless, "direct": direct})
        print(
            f"run {i + 1}: URL {lab['url']:.2f} s, notebook ready {lab['ready']:.2f} s; phase 02 "
            f"lab {lab['phase']:.2f} s, headless {headless:.2f} s, direct {direct:.2f} s ({status})"
        )
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(
        f"median of {args.runs}: `runbook lab` to URL {med['url']:.2f} s, to phase 02 ready "
        f"(kernel idle) {med['ready']:.2f} s"
    )
    print(
        f"phase 02 overhead: interactive {med['phase'] - med['direct']:.2f} s, headless "
        f"{med['headless'] - med['direct']:.2f} s (wall {med['phase']:.2f} / "
        f"{med['headless']:.2f} / direct {med['direct']:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
