"""The README and docs/ point only at files inside the repository, and those files exist.

Whoever clones the project has nothing else: a link to ../shared/... or to a module that was
renamed would send them nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runbook_lib import paths

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
