"""The phase notebooks: clean, thin, and executed for real on a fresh local warehouse.

Two end-to-end cases: every notebook run on its own with its default parameters (what a
person does in JupyterLab), and the full `runbook run --env local` chain with assertions on
what the archived run recorded, `verify`, and a rollback of that run.
"""

from __future__ import annotations

import ast
import html
import json
import re
import subprocess
from pathlib import Path

import papermill
import pytest

from runbook_lib import paths
from runbook_lib.platform.league import seed_league
from runbook_lib.run import engine, manifest, runner
from runbook_lib.run.params import load_params
from runbook_lib.run.phase import read_results
from runbook_lib.warehouse import connect
from runbook_lib.warehouse.base import SQL_TRACE_ENV
from tests import sql_typing
from tests.conftest import RUNBOOK_PROCESS
from tests.phase_notebooks import write_phase

NOTEBOOKS = sorted(paths.SOURCE_ROOT.glob("notebooks/*.ipynb"))
TODAY = "2025-04-10"


def _cells(nb_path: Path, kind: str = "code") -> list[dict]:
    return [c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == kind]


def test_there_should_be_every_phase_of_the_runbook():
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["00_preflight", "01_code_deployment", "02_data_cleanup", "03_cloud_function",
                     "04_integration_test", "05_monitoring", "06_post_deployment", "90_rollback"]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_should_be_committed_without_outputs(nb_path):
    for cell in _cells(nb_path):
        assert not cell.get("outputs") and cell.get("execution_count") is None


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_should_be_the_parameters_with_safe_defaults(nb_path):
    first = _cells(nb_path)[0]
    assert "parameters" in first["metadata"].get("tags", [])
    source = "".join(first["source"])
    assert 'env = "local"' in source and 'run_dir = ""' in source and 'today = ""' in source


# A condition decided in a cell is logic the library's tests never see: comparisons (==, <, >=,
# in, is ...), `and`/`or`/`not`, `x if c else y`, if/while/assert, and filters in comprehensions.
_CONDITIONS = (ast.Compare, ast.BoolOp, ast.IfExp, ast.If, ast.While, ast.Assert)


def _conditions(code: str) -> list[str]:
    """Return each condition in a cell's code, as the source text that decides it."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.append(ast.get_source_segment(code, node))
        elif isinstance(node, ast.comprehension) and node.ifs:
            found.extend(ast.get_source_segment(code, c) for c in node.ifs)
        elif isinstance(node, _CONDITIONS):
            found.append(ast.get_source_segment(code, node).splitlines()[0])
    return found


def notebook_logic(nb_path: Path) -> list[str]:
    """Return what in a notebook's code cells is logic, not a call: SQL, conditions, sys.exit."""
    found = []
    for cell in _cells(nb_path):
        code = "".join(cell["source"])
        found += [f"SQL: {m.group(0)}" for m in
                  re.finditer(r"\b(SELECT|INSERT INTO|DELETE FROM|MERGE|UPDATE)\b\s", code)]
        found += ["sys.exit"] if "sys.exit" in code else []
        found += [f"condition: {c}" for c in _conditions(code)]
    return found


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_should_hold_no_sql_and_no_condition(nb_path):
    assert notebook_logic(nb_path) == []


@pytest.mark.parametrize(
    "cell",
    [
        'phase.check("rows", len(rows) > 0)',
        "ok = table['coverage_pct'] == 100",
        'phase.check("found", "PRE-FLIGHT" in lines)',
        "stop is not None",
        'print(f"{n >= 3}")',
        "shown = frame if frame is not None else 'nothing'",
        'if env == "prod":\n    pass',
        "phase.check('all', all(x.ok for x in rows if x.kept))",
        "phase.check('none failed', not failed)",
        "done = a and b",
        'wh.query("SELECT 1")',
    ],
)
def test_notebook_logic_should_catch_a_condition_or_sql_in_a_cell(tmp_path, cell):
    bad = write_phase(tmp_path, "99_bad", [cell])
    assert notebook_logic(bad)


def test_notebook_logic_should_accept_a_cell_that_loops_over_the_librarys_checks(tmp_path):
    cell = "for check in phase_checks.access_checks(access):\n    phase.check(*check)\naccess"
    assert notebook_logic(write_phase(tmp_path, "99_thin", [cell])) == []


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_should_explain_itself_before_its_code(nb_path):
    cells = json.loads(nb_path.read_text())["cells"]
    assert cells[0]["cell_type"] == "markdown"
    intro = "".join(cells[0]["source"])
    assert len(intro) > 600 and "Why" in intro


def _seed(root: Path):
    params = load_params("local", {"warehouse_dir": str(root / "outputs/local/warehouse"), "today": TODAY})
    seed_league(connect(params), params.tables, params.effective_today())
    return params


def test_each_notebook_should_run_on_its_own_and_send_only_sql_that_bigquery_types(
    tmp_path, monkeypatch
):
    """What a person does in JupyterLab: open a phase, run all, with no parameter changed.

    Every statement the seed and the eight phases send is traced ($RUNBOOK_SQL_TRACE) and typed
    with sqlglot's BigQuery dialect (tests/sql_typing.py): DuckDB runs forms BigQuery rejects.
    """
    trace = tmp_path / "sql_trace.jsonl"
    monkeypatch.setenv(SQL_TRACE_ENV, str(trace))
    monkeypatch.setenv("RUNBOOK_ROOT", str(tmp_path))
    monkeypatch.setenv("RUNBOOK_PARAMS_DIR", str(paths.PARAMS_DIR))
    params = _seed(tmp_path)
    standalone = tmp_path / "outputs/local/standalone"
    for nb in NOTEBOOKS:
        papermill.execute_notebook(
            str(nb), str(tmp_path / nb.name), kernel_name=engine.kernel_name(),
            cwd=str(paths.SOURCE_ROOT), progress_bar=False,
        )
        doc = read_results(standalone, nb.stem)
        assert doc and doc["status"] == "SUCCEEDED", (nb.stem, doc and doc["checks"])
    restored = read_results(standalone, "90_rollback")["results"]["restored"]
    assert restored and all(r["verified"] for r in restored)
    # The monitor's statements too: `runbook monitor` on the warehouse the phases left behind.
    monitor = subprocess.run([*RUNBOOK_PROCESS, "monitor", "--env", "local"], capture_output=True,
                             text=True, cwd=paths.SOURCE_ROOT, check=False)
    assert monitor.returncode in (0, 1), monitor.stderr  # healthy or alerting, never bad input
    sent = [json.loads(line) for line in trace.read_text().splitlines()]
    assert not sql_typing.untyped_statements(sent, params.tables)
    # Only a sealed run anchors its chain: the full run's test types run/anchor.py's statements.
    assert sql_typing.untraced_sql_modules(sent) == ["runbook_lib.run.anchor"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """One full `runbook run --env local` on a freshly seeded warehouse."""
    root = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SQL_TRACE_ENV, str(root / "sql_trace.jsonl"))
        # As on a user's machine, where Python writes bytecode (the archive must not gain any).
        env.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        params = _seed(root)
        overrides = {"warehouse_dir": str(params.warehouse_path),
                     "backfill.checkpoint_dir": str(root / "checkpoints"), "today": TODAY}
        events = []
        result = runner.run(
            "local", out_root=root / "outputs", overrides=overrides, progress=events.append
        )
    result.sql_trace, result.tables = root / "sql_trace.jsonl", params.tables
    result.kernels = {e["phase"]: e["started"] for e in events if e["event"] == "kernel"}
    return result


def _results(run, phase: str) -> dict:
    return read_results(run.run_dir, phase)["results"]


def test_full_local_run_should_succeed_and_archive_every_phase(local_run):
    assert local_run.ok
    archived = sorted(p.name for p in local_run.run_dir.glob("*.ipynb"))
    assert archived == [p.name for p in NOTEBOOKS if not p.stem.startswith("9")]
    for name in ("manifest.json", "deployment_log.md", "report.html"):
        assert (local_run.run_dir / name).stat().st_size > 0
    # The archived function bundle is what was built: serving it wrote no bytecode into it.
    assert not list(local_run.run_dir.rglob("__pycache__"))


def test_full_local_run_should_fork_every_phase_kernel(local_run):
    """Every phase ran in a kernel forked from the run's fork server (forkserver.py), so the
    assertions of this module hold for forked kernels; none was refused."""
    assert local_run.kernels == {r["phase"]: "forked" for r in local_run.records}
    # Phase 01's safeguard pytest too: forked from the same server by its kernel.
    tests_cell = (local_run.run_dir / "01_code_deployment.ipynb").read_text()
    assert "'started': 'forked'" in tests_cell


def test_full_local_run_should_send_only_sql_that_bigquery_types(local_run, tmp_path, monkeypatch):
    trace = tmp_path / "verify_trace.jsonl"
    monkeypatch.setenv(SQL_TRACE_ENV, str(trace))
    assert runner.verify(local_run.run_dir).ok  # reads the run's anchor rows back
    sent = [json.loads(line) for line in local_run.sql_trace.read_text().splitlines()]
    sent += [json.loads(line) for line in trace.read_text().splitlines()]
    assert "runbook_lib.run.anchor" in {item["sender"] for item in sent}
    assert not sql_typing.untyped_statements(sent, local_run.tables)


def test_full_local_run_should_delete_exactly_the_previewed_rows_after_verified_backups(local_run):
    cleaned = _results(local_run, "02_data_cleanup")
    assert cleaned["rows_deleted"] == sum(t["previewed"] for t in cleaned["tables"]) > 1000
    assert all(t["verified"] and t["backup_rows"] and t["backup"] for t in cleaned["tables"])


def test_full_local_run_should_have_the_function_delete_real_rows_with_an_audit_row(local_run):
    function = _results(local_run, "03_cloud_function")["function"]
    assert function["rows_deleted"] > 0
    assert function["audit_row"]["trigger"] == "scheduled"
    assert function["audit_row"]["total_records_deleted"] == function["rows_deleted"]


def test_full_local_run_should_replay_the_incident_to_187_and_175(local_run):
    integration = _results(local_run, "04_integration_test")
    assert integration["preflight_stopped"] is True
    coverage = {c["game_date"]: c for c in integration["coverage"]}
    assert (coverage["2023-02-23"]["expected"], coverage["2023-02-23"]["actual"]) == (187, 187)
    assert (coverage["2023-02-24"]["expected"], coverage["2023-02-24"]["actual"]) == (175, 175)
    assert all(c["coverage_pct"] == 100.0 for c in coverage.values()) and len(coverage) == 3
    assert all(line["found"] for line in integration["log_lines"])


# The criteria only evidence from after the deployment can meet (issue 11).
LATER = {"First backfill completes with 100% coverage", "All 4 improvements visible in logs",
         "Monitoring dashboards active"}


def test_full_local_run_should_meet_every_criterion_it_can_and_wait_for_later_evidence(local_run):
    criteria = {c["criterion"]: c for c in _results(local_run, "06_post_deployment")["success_criteria"]}
    assert len(criteria) == 7
    assert {name for name, c in criteria.items() if not c["met"]} == LATER
    log = (local_run.run_dir / "deployment_log.md").read_text()
    assert "[Name]" not in log and "YYYY" not in log and "X records" not in log


def test_followup_should_turn_pending_into_pass_on_later_evidence_and_still_verify(local_run):
    """A nightly backfill and the daily monitor after the deployment, then `runbook followup`."""
    import datetime as dt

    from runbook_lib.platform import monitoring
    from runbook_lib.run import backfill_steps, followup, monitor_phase

    params = runner.prepare_resume(local_run.run_dir)[0].params
    wh = connect(params)
    day = params.effective_today() - dt.timedelta(days=1)
    backfill_steps.run_backfill(wh, params, day, day, run_id="nightly-after", resume=False)
    with monitoring.alert_channel(None, is_local=True) as channel:
        daily = monitor_phase.run_monitor(wh, params, params.effective_today(), channel, None)
    assert daily.healthy, daily.to_frame()
    before = len(json.loads((local_run.run_dir / "manifest.json").read_text())["records"])
    followup.followup(local_run.run_dir)
    criteria = {c["criterion"]: c for c in _results(local_run, "06_post_deployment")["success_criteria"]}
    assert all(criteria[name]["met"] for name in LATER), criteria
    assert len(json.loads((local_run.run_dir / "manifest.json").read_text())["records"]) > before
    assert "Daily monitor finds no problem | PASS" in (local_run.run_dir / "deployment_log.md").read_text()
    assert runner.verify(local_run.run_dir).ok
    assert followup.verdict(local_run.run_dir)[0] == "DEPLOYED"  # the first week still waits


def test_verify_should_accept_the_run_then_name_an_edited_notebook(local_run, tmp_path):
    import shutil

    assert runner.verify(local_run.run_dir).ok
    copy = tmp_path / "copy"
    shutil.copytree(local_run.run_dir, copy)
    nb = copy / "04_integration_test.ipynb"
    nb.write_text(nb.read_text().replace("187", "186", 1))
    result = runner.verify(copy)
    assert not result.ok and "04_integration_test" in str(result.first)


def test_rollback_should_restore_the_runs_backups_and_extend_the_chain(local_run):
    result = runner.rollback(local_run.run_dir)
    restored = _results(result, "90_rollback")["restored"]
    assert len(restored) == 2 and all(r["verified"] for r in restored)
    assert runner.verify(local_run.run_dir).ok
    page = (local_run.run_dir / "report.html").read_text()
    assert "Verdict: <span class='ROLLED_BACK'>ROLLED BACK</span>" in page


def test_report_of_the_full_run_opens_with_who_what_and_the_verdict(local_run):
    """The auditor's first screen: commit and tree, deployer, verifier, verdict, criteria."""
    from runbook_lib.run import report

    page = (local_run.run_dir / "report.html").read_text()
    header = page[: page.index("<nav")]
    assert re.search(r"commit [0-9a-f]{40} on \S+, (clean tree|\d+ uncommitted file)", header)
    for who in ("deployed by", "verified by"):
        assert re.search(f">{who}</th><td[^>]*>[^<]+ \\(local run, signed automatically\\)", header)
    # 24 h checks PENDING: DEPLOYED; once the rollback test above ran on this shared run, the
    # verdict is ROLLED BACK with its reason (order under xdist is not fixed).
    rolled_back = any(r["phase"] == "90_rollback" for r in manifest.load(local_run.run_dir)["records"])
    expected = "<span class='ROLLED_BACK'>ROLLED BACK</span>" if rolled_back else (
        "<span class='DEPLOYED'>DEPLOYED</span>")
    assert f"Verdict: {expected}" in header
    assert header.count("<td style") >= 7 * 3 and "Team trained on new features" in header
    for nb in NOTEBOOKS[:-1]:
        assert f"href='#{report.phase_anchor(nb.stem)}'" in page
        assert f"href='#{nb.stem}-attempt1'" in page and f"id='{nb.stem}-attempt1'" in page
    assert "…" not in page and '<script src="http' not in page and "<script" not in page


def test_phase_outputs_read_as_html_with_nothing_cut_and_no_info_as_error(local_run):
    """Each phase opens with its facts, ends with an HTML table of checks; INFO is not stderr."""
    for nb_path in sorted(local_run.run_dir.glob("0*.ipynb")):
        cells = [c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code"]
        opening = next(c for c in cells if "open_phase(" in "".join(c["source"]))
        first = html.unescape("".join(opening["outputs"][0]["data"]["text/html"]))
        for fact in ("environment", "warehouse", "today", "run folder", "none run yet"):
            assert fact in first, (nb_path.name, fact)
        assert "the run's date" in first and "0/0" not in first
        last = "".join(cells[-1]["outputs"][0]["data"]["text/html"])
        assert "SUCCEEDED" in last and "<table" in last and "…" not in last
        for cell in cells:
            for out in cell["outputs"]:
                if out.get("name") == "stderr":  # only WARNING and above shows as an error
                    assert re.match(r"(WARNING|ERROR|CRITICAL): ", "".join(out["text"])), nb_path


@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium (/usr/bin/chromium)"
)
def test_report_fits_1280_pixels_in_a_browser(local_run):
    """At 1,280 px the report never scrolls sideways: wide tables and evidence wrap."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((local_run.run_dir / "report.html").as_uri())
            width = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(path=str(local_run.run_dir.parent / "report-1280.png"))
        finally:
            browser.close()
    assert width <= 1280
