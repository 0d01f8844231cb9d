"""The runner's papermill engine: the notebook saved around every cell."""

from __future__ import annotations

import errno
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from papermill.iorw import write_ipynb

from runbook_lib.run.engine import _ProgressManager


def _notebook():
    cell = new_code_cell("print('é')", outputs=[new_output("stream", text="é\n")])
    return new_notebook(
        cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )


def test_a_save_should_write_the_bytes_papermill_writes(tmp_path):
    ours, theirs = tmp_path / "ours.ipynb", tmp_path / "theirs.ipynb"
    nb = _notebook()
    _ProgressManager(nb, output_path=str(ours)).save()
    write_ipynb(nb, str(theirs))
    assert ours.read_bytes() == theirs.read_bytes()
    assert nbformat.validate(nbformat.read(ours, as_version=4)) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.ipynb", "theirs.ipynb"]


def test_a_save_cut_short_should_leave_the_previous_save_whole(tmp_path, monkeypatch):
    """A save that dies mid-write (disk full here; SIGKILL in a crash) leaves the notebook the
    previous save wrote, never half of one (papermill's own save rewrites the file in place)."""
    path = tmp_path / "phase.ipynb"
    manager = _ProgressManager(_notebook(), output_path=str(path))
    manager.save()
    before = path.read_bytes()
    write_text = Path.write_text

    def disk_full(self, data, *args, **kwargs):
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    manager.nb.cells[0].outputs.append(new_output("stream", text="more\n"))
    with pytest.raises(OSError):
        manager.save()
    assert path.read_bytes() == before
