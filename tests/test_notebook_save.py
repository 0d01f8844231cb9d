"""A running notebook's saves: nbformat's exact text, whichever cells changed between them."""

from __future__ import annotations

import copy

import nbformat
from nbformat.v4 import (
    nbjson,
    new_code_cell,
    new_markdown_cell,
    new_notebook,
    new_output,
)

from runbook_lib import paths
from runbook_lib.run.notebook_save import NotebookSaver


def _notebook():
    png = new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Fig>"})
    return new_notebook(
        cells=[
            new_markdown_cell("# Phase\n\nIt *does* things: é, 中文, \u2028.", attachments={}),
            new_code_cell("x = 1\nprint(x)", outputs=[new_output("stream", text="1\n2\n")]),
            new_code_cell("show()", outputs=[png], metadata={"trusted": True, "tags": ["a"]}),
            new_code_cell("", execution_count=3),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3"},
            "orig_nbformat": 4,
            "signature": "s",
        },
    )


def test_each_save_should_be_nbformats_text_as_cells_change_anywhere():
    nb, saver = _notebook(), NotebookSaver()
    assert saver.writes(nb) == nbjson.writes(nb)
    changes = [
        lambda: nb.cells[1].outputs.append(new_output("stream", text="more\n")),
        lambda: nb.cells[1].outputs[0].update(text="1\n2\n3\n"),  # a stream output coalesced
        lambda: nb.cells[0].update(source="changed earlier cell"),  # a display update's kind
        lambda: nb.cells[2].metadata.update(papermill={"status": "running", "duration": 0.25}),
        lambda: nb.metadata.update(papermill={"start_time": "2026-12-01T07:00:00"}),
        lambda: nb.cells.append(new_code_cell("added", outputs=[])),
        lambda: nb.cells.pop(1),  # every later cell moves up a position
        lambda: nb.cells.clear(),
    ]
    for change in changes:
        change()
        assert saver.writes(nb) == nbjson.writes(nb)


def test_a_save_should_leave_the_notebook_as_it_was():
    nb, saver = _notebook(), NotebookSaver()
    before = copy.deepcopy(nb)
    saver.writes(nb)
    saver.writes(nb)
    assert nb == before
    assert nb.cells[2].metadata["trusted"] is True  # stripped from the text, not the notebook


def test_the_phase_notebooks_should_save_as_nbformat_writes_them():
    for path in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        saver = NotebookSaver()
        for cell in nb.cells:  # one cell changing at a time, as a run changes them
            assert saver.writes(nb) == nbjson.writes(nb), path.name
            cell.metadata["papermill"] = {"status": "completed"}
        assert saver.writes(nb) == nbjson.writes(nb), path.name
