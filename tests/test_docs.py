"""The README and docs/ point only at files inside the repository, and those files exist.

Whoever clones the project has nothing else: a link to ../shared/... or to a module that was
renamed would send them nowhere. The README's staging walk-through is run up to the credentials
check, so its `--set` lines stay ones the runbook accepts.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from runbook_lib import paths
from runbook_lib.cli import main

ROOT = paths.SOURCE_ROOT
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"`((?:[a-z_]+/)*[a-z_]+\.py)(?::\w+)?`")
NOTEBOOK = re.compile(r"`(\d\d_[a-z_]+)`")


def _page_ids(pages: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in pages]


@pytest.mark.parametrize("page", PAGES, ids=_page_ids(PAGES))
def test_every_link_should_stay_inside_the_repository_and_exist(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the page
        resolved = (page.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
        assert resolved.exists(), f"{page.name} links to a missing file: {target}"


@pytest.mark.parametrize("page", PAGES, ids=_page_ids(PAGES))
def test_every_module_and_notebook_named_should_exist(page):
    text = page.read_text()
    for name in MODULE.findall(text):
        found = [p for p in (ROOT / name, ROOT / "runbook_lib" / name) if p.exists()]
        found += list((ROOT / "runbook_lib").glob(f"*/{name}"))  # `backfill.py` in a table
        assert found, f"{page.name} names {name}, which is not in the repository"
    for stem in NOTEBOOK.findall(text):
        assert (paths.NOTEBOOKS_DIR / f"{stem}.ipynb").exists(), f"{page.name} names {stem}"


def test_the_docs_folder_should_be_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, f"README does not link docs/{page.name}"


def _staging_run_lines() -> list[list[str]]:
    """Return the arguments of each `runbook run` line of the README's staging walk-through."""
    text = (ROOT / "README.md").read_text().split("## A staging run, end to end", 1)[1]
    block = text.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)[1:]
        for line in block.splitlines()
        if line.startswith(".venv/bin/runbook run ")
    ]


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """No Google credentials anywhere, and run archives under tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path / "out")
    return tmp_path / "out"


def test_the_readmes_staging_run_lines_should_pass_every_check_up_to_the_credentials(
    no_credentials, capsys
):
    lines = _staging_run_lines()
    assert len(lines) == 2 and all(line[:3] == ["run", "--env", "staging"] for line in lines)
    for args in lines:
        assert main(args) == 1  # 2 would be a --set key or value the runbook refuses
        assert "no Google credentials" in capsys.readouterr().err
    assert not no_credentials.exists()


def test_a_mistyped_set_key_in_a_staging_line_should_be_refused_as_bad_input(
    no_credentials, capsys
):
    args = [a.replace("cleanup.dry_run=", "cleanup.dryrun=") for a in _staging_run_lines()[1]]
    assert main(args) == 2 and "cleanup.dryrun" in capsys.readouterr().err
