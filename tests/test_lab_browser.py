"""A person steps through phase 02 in JupyterLab, in a real browser (Playwright + Debian's chromium).

The journey: `runbook lab --env local` as a real process on a seeded warehouse; phase 02 opens;
Run All stops at the confirmation form with one short line (the cells after it did not run);
the person types the line shown, confirms and runs the rest; the warehouse lost exactly the
previewed rows, with verified backups; the phase seals into the run; `runbook verify` accepts
the run; the tracked notebooks/ are untouched. Screenshots of each step land in
outputs/screenshots/ (git-ignored).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from runbook_lib import paths
from tests import lab_process
from tests.lab_process import CHROMIUM, CHROMIUM_ARGS, RUNBOOK, start_lab

lab_root = lab_process.lab_root  # the fixture

WAIT = 300_000  # ms: a ceiling for a loaded 2-core machine, not a timing assertion
SHOTS = paths.SOURCE_ROOT / "outputs" / "screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no /usr/bin/chromium: install it with `apt-get install -y chromium fonts-noto-color-emoji`",
)


def _stale_counts(root: Path) -> dict:
    from runbook_lib.platform.cleanup import plan_cleanup
    from runbook_lib.run.params import load_params
    from runbook_lib.warehouse import connect

    params = load_params("local", {"warehouse_dir": str(root / "outputs/local/warehouse")})
    wh = connect(params)
    plan = plan_cleanup(
        wh,
        params.tables,
        params.effective_today(),
        params.cleanup.ttl_days,
        params.cleanup.max_delete_fraction,
        env=params.env,
    )
    counts = {p.table.short: p.total_rows for p in plan.previews}
    stale = {p.table.short: p.stale_rows for p in plan.previews}
    return {
        "stale": plan.total_stale,
        "tokens": dict(plan.tokens),
        "rows": counts,
        "by_table": stale,
    }


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"lab_{name}.png"))


def _menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def _cell(page, text: str):
    """Return the notebook cell whose code contains `text`."""
    return page.locator(".jp-Notebook .jp-CodeCell", has_text=text).first


def _wait_sealed(run_dir: Path, proc: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        records = json.loads((run_dir / "manifest.json").read_text())["records"]
        sealed = [r for r in records if r.get("mode") == "interactive"]
        if sealed:
            return sealed[-1]
        time.sleep(0.5)
    raise AssertionError(
        f"phase 02 was not sealed after its finish() cell was saved: {_why_unsealed(run_dir, proc)}"
    )


def _why_unsealed(run_dir: Path, proc: subprocess.Popen) -> str:
    from runbook_lib.run import interactive

    copy = interactive.working_dir(run_dir) / "02_data_cleanup.ipynb"
    requests = sorted(p.name for p in (copy.parent / ".seal").glob("*"))
    outs = json.loads(copy.read_text())["cells"][-1].get("outputs", [])
    printed = proc.stdout.read() if proc.poll() is not None else "(still running)"
    return (
        f"runbook lab exit={proc.poll()} printed {printed!r}, seal requests={requests}, "
        f"pending={interactive.pending_seals(run_dir)}, copy saved {time.time() - copy.stat().st_mtime:.0f} s ago, "
        f"last cell outputs={str(outs)[:300]}"
    )


def _step_through_02(page, url: str) -> str:
    """Open 02, Run All, see it stop at the form, confirm what it shows, run the rest."""
    page.goto(url)
    page.get_by_text(re.compile(r"\| Idle")).wait_for(timeout=WAIT)
    _shot(page, "1_opened")
    _menu(page, "Run", "Run All Cells")
    paused = page.get_by_text("Paused: confirm the plan")
    paused.wait_for(timeout=WAIT)
    form = _cell(page, "interact.ask_confirmation(")
    form.scroll_into_view_if_needed()
    _shot(page, "2_paused_at_the_form")
    assert "Traceback" not in form.inner_text()
    after = _cell(page, "resolve_dry_run(phase").locator(".jp-InputPrompt")
    assert after.inner_text().strip() == "[ ]:", "Run All went on past the form"
    token = form.locator("code").first.inner_text().strip()
    form.locator("textarea").fill(token)
    form.get_by_role("button", name="Confirm").click()
    form.get_by_text("Confirmed").first.wait_for()
    _shot(page, "3_confirmed")
    form.locator(".jp-InputPrompt").click()
    _menu(page, "Run", "Run Selected Cell and All Below")
    sealing = page.get_by_text(re.compile(r"sealing \(asked "))
    sealing.wait_for(timeout=WAIT)
    sealing.scroll_into_view_if_needed()
    page.get_by_text(re.compile(r"\| Idle")).wait_for(timeout=WAIT)
    _menu(page, "File", "Save Notebook")  # what the sealing line says to do to hurry autosave
    _shot(page, "4_finished")
    return token


def test_a_person_should_step_through_phase_02_in_jupyterlab_and_seal_it(lab_root):
    from playwright.sync_api import sync_playwright

    before = _stale_counts(lab_root)
    tracked = _git_status_of_notebooks()
    proc, url, run_dir = start_lab(lab_root, "--phases", "02")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                token = _step_through_02(page, url)
            except Exception:
                _shot(page, "failed")  # what the browser showed when the journey stopped
                raise
            t0 = time.monotonic()
            sealed = _wait_sealed(run_dir, proc)
            print(f"sealed {time.monotonic() - t0:.1f} s after the save")
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert not (lab_root / "outputs/local/warehouse/nba-props-platform.duckdb.lock").exists()
    assert token == "; ".join(before["tokens"].values())
    assert sealed["status"] == "SUCCEEDED", sealed["reason"]
    results = sealed["results"]
    assert results["rows_deleted"] == before["stale"] > 0
    assert results["confirmation"]["how"] == "typed" and results["confirmation"]["by"]
    after = _stale_counts(lab_root)
    assert after["stale"] == 0
    assert {t: before["rows"][t] - after["rows"][t] for t in after["rows"]} == before["by_table"]
    verify = subprocess.run([RUNBOOK, "verify", str(run_dir)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert _git_status_of_notebooks() == tracked  # clean on a clean checkout


def _git_status_of_notebooks() -> str:
    status = subprocess.run(
        ["git", "status", "--porcelain", "notebooks/"],
        cwd=paths.SOURCE_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return status.stdout
