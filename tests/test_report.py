"""report.html as the auditor's first page: header, contents, every attempt, offline, nothing cut."""

from __future__ import annotations

import re

import nbformat
import pytest

from runbook_lib.errors import PhaseFailedError
from runbook_lib.run import manifest, notebook_html, report, runner, static_widgets
from tests.phase_notebooks import FAULTS, write_phase

LONG = "backup nba_backups.upcoming_player_game_context_backup_run1 verified, " * 12
# A form as a phase shows it in JupyterLab: papermill's kernel is interactive unless the
# runner's RUNBOOK_HEADLESS says otherwise, so this cell shows the widgets in a run too.
FORM = """import ipywidgets as w
from IPython.display import display
display(w.HTML("To go on, type exactly: <code>delete 3 rows from a.b</code>"),
        w.HBox([w.Text(value="delete 3 rows from a.b"), w.Button(description="Confirm")]),
        w.Checkbox(description="Code review completed", value=True))
phase.record("confirmation", {"how": "typed in the form", "given": "delete 3 rows from a.b"})
phase.sign_off("Code review completed", "Ann Lee", "2025-04-10T09:00:00+00:00")"""


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A run whose phase 01 failed, then resumed: 01 has two attempts; 00 holds a form."""
    tmp = tmp_path_factory.mktemp("report")
    nbdir = tmp / "notebooks"
    write_phase(nbdir, "00_first", [FORM, f'phase.check("backups verified", True, "{LONG}")'])
    write_phase(nbdir, "01_second", ['phase.check("before", True)', FAULTS["raises"]])
    write_phase(nbdir, "02_third", ['phase.check("third", True)'])
    with pytest.raises(PhaseFailedError) as failed:
        runner.run("local", notebooks_dir=nbdir, out_root=tmp / "out")
    run_dir = failed.value.result.run_dir
    write_phase(nbdir, "01_second", ['phase.check("before", True)'])
    runner.resume(run_dir)
    return run_dir, (run_dir / report.REPORT_NAME).read_text()


def test_report_starts_with_the_header_an_auditor_asks_for(archive):
    run_dir, page = archive
    header = page[: page.index("<nav")]
    for label in ("run", "environment", "code", "deployed by", "verified by", "verdict"):
        assert f">{label}</th>" in header
    assert run_dir.name in header and "Success criteria" in header
    assert "Verdict: <span class='DEPLOYED'>DEPLOYED</span>" in header


def test_contents_link_every_phase_and_every_attempt(archive):
    run_dir, page = archive
    toc = page[page.index("<nav") : page.index("</nav>")]
    for phase in ("00_first", "01_second", "02_third"):
        assert f"href='#{report.phase_anchor(phase)}'" in toc
        assert f"id='{report.phase_anchor(phase)}'" in page
    notebooks = sorted(p.name for p in run_dir.glob("*.ipynb"))
    assert "01_second.attempt2.ipynb" in notebooks and len(notebooks) == 4
    targets = re.findall(r"href='#([^']+-attempt\d+)'", toc)
    assert len(targets) == len(notebooks) and "01_second-attempt2" in targets
    assert all(f"id='{t}'" in page for t in targets)


def test_report_needs_no_cdn_and_shows_widgets_as_their_values(archive):
    _, page = archive
    assert "<script" not in page and "widget-view+json" not in page
    assert "☑ Code review completed" in page and "<code>delete 3 rows from a.b</code>" in page
    assert "Ann Lee" in page and "typed in the form" in page


def test_report_evidence_is_whole(archive):
    _, page = archive
    assert "…" not in page and LONG.strip() in page


def test_the_report_assembled_during_the_run_is_the_page_rendered_at_the_end(archive):
    """Each attempt's HTML, rendered while the next phase ran (and at resume, the attempts
    archived before), gives the same bytes as rendering every notebook at the end."""
    run_dir, page = archive
    assert report.render(run_dir) == page


class _Renders(list):
    """The renders done in this process (not in the worker), and the real render."""

    real = staticmethod(notebook_html.render)


def _watched_first_phase(archive, tmp_path, monkeypatch):
    """Return a copy of phase 00's notebook, its results, its HTML, and the renders done here."""
    run_dir, _ = archive
    nb = tmp_path / "00_first.ipynb"
    nb.write_bytes((run_dir / "00_first.ipynb").read_bytes())
    results = manifest.latest_status(manifest.load(run_dir))["00_first"]["results"]
    here = _Renders()
    expected = here.real(nb.read_bytes(), results)
    monkeypatch.setattr(notebook_html, "render", lambda d, r: here.append(r) or here.real(d, r))
    return nb, results, expected, here


def test_a_fragment_is_reused_only_for_the_same_notebook_and_results(archive, tmp_path, monkeypatch):
    """The worker's fragment is used for the same notebook and results; a notebook or results
    changed after it was rendered are rendered again, here."""
    nb, results, expected, here = _watched_first_phase(archive, tmp_path, monkeypatch)
    other = {**results, "confirmation": {"how": "typed again", "given": "something else"}}
    real = here.real
    fragments = notebook_html.Fragments()
    try:
        fragments.submit(nb, results)
        fragments.wait()
        assert fragments.html(nb, results) == expected and here == []  # the worker's
        shown = fragments.html(nb, other)
        assert "typed again" in shown and shown == real(nb.read_bytes(), other)
        doc = nbformat.read(nb, as_version=4)
        doc.cells.append(nbformat.v4.new_markdown_cell("added after the render"))
        nbformat.write(doc, nb)
        shown = fragments.html(nb, results)
        assert "added after the render" in shown and shown == real(nb.read_bytes(), results)
        assert len(here) == 2
    finally:
        fragments.close()


def test_make_static_without_saved_state_shows_what_the_phase_recorded():
    """JupyterLab saves no widget state by default: the recorded answers are the evidence."""
    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "form",
                outputs=[
                    nbformat.v4.new_output("display_data", {static_widgets.VIEW: view}),
                    nbformat.v4.new_output("stream", name="stdout", text="after"),
                ],
            )
        ]
    )
    results = {"approvals": [{"item": "Deployment verified", "name": "Bo", "at": "t"}]}
    outputs = static_widgets.make_static(nb, results).cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data", "stream"]
    html = outputs[0].data["text/html"]
    assert (
        "Deployment verified" in html
        and "Bo" in html
        and static_widgets.VIEW not in outputs[0].data
    )
    assert static_widgets.VIEW in nb.cells[0].outputs[0].data  # the archived notebook is untouched


def test_the_report_waits_for_a_fragment_the_worker_is_still_rendering(archive, tmp_path, monkeypatch):
    """At the end of a run the last phase's fragment is usually not written yet: the report
    waits for the worker (its exporter is loaded) instead of rendering it here; once the
    worker is gone, what it did not deliver is rendered here."""
    nb, results, expected, here = _watched_first_phase(archive, tmp_path, monkeypatch)
    fragments = notebook_html.Fragments()
    try:
        fragments.submit(nb, results)  # no wait(): asked at once, as finalise does
        assert fragments.html(nb, results) == expected and here == []
        other = tmp_path / "other.ipynb"
        other.write_bytes(nb.read_bytes().replace(b"backups verified", b"backups checked"))
        fragments.submit(other, results)
        fragments._worker.kill()  # the worker dies before it delivers
        fragments._worker.wait()
        assert "backups checked" in fragments.html(other, results) and len(here) == 1
    finally:
        fragments.close()
