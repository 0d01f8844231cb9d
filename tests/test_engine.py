"""The runner's papermill engine: the notebook saved around every cell, the kernel client."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import nbformat
import pytest
from nbclient.util import run_sync
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from papermill.iorw import write_ipynb

from runbook_lib.run.engine import ReadyClient, _ProgressManager, kernel_name, start_kernel


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


def test_the_notebook_on_disk_should_move_on_at_each_code_cells_start_and_at_the_end(tmp_path):
    """Saved at a code cell's start (what came before it complete), not at a markdown cell
    or a cell's end: a run killed mid-cell leaves the notebook as its running cell started."""
    path = tmp_path / "phase.ipynb"
    nb = new_notebook(
        cells=[new_markdown_cell("# a"), new_code_cell("1"), new_markdown_cell("b")]
        + [new_code_cell("2")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}, "papermill": {}},
    )
    manager = _ProgressManager(nb, output_path=str(path), progress_bar=False)
    saves = []
    real_save = manager.save

    def on_disk() -> list[tuple[str, int]]:
        cells = nbformat.read(path, as_version=4).cells
        return [(c.metadata.papermill["status"], len(c.get("outputs", []))) for c in cells]

    def save(**kwargs):  # every state the file on disk goes through, in order
        real_save(**kwargs)
        if not saves or saves[-1] != on_disk():
            saves.append(on_disk())

    manager.save = save
    manager.notebook_start()
    for i, cell in enumerate(nb.cells):  # papermill's order: start, execute, complete
        manager.cell_start(cell, i)
        if cell.cell_type == "code":
            cell.outputs.append(new_output("stream", text=f"{i}\n"))
        manager.cell_complete(cell, i)
    manager.notebook_complete()
    pending, running, completed = "pending", "running", "completed"
    assert saves == [
        [(pending, 0), (pending, 0), (pending, 0), (pending, 0)],  # notebook start
        [(completed, 0), (running, 0), (pending, 0), (pending, 0)],  # cell 1 starts
        [(completed, 0), (completed, 1), (completed, 0), (running, 0)],  # cell 3 starts
        [(completed, 0), (completed, 1), (completed, 0), (completed, 1)],  # the end
    ]


def test_a_run_should_leave_no_thread_and_no_open_client_behind(tmp_path, monkeypatch):
    """papermill hands nbclient our kernel manager, so nbclient left each phase's client open:
    its heartbeat thread and sockets lived until the runner exited. A run now closes them."""
    from runbook_lib.run import runner
    from tests.phase_notebooks import write_phase

    monkeypatch.setattr(runner.paths, "ROOT", tmp_path)
    folder = tmp_path / "notebooks"
    for name in ("00_first", "01_second"):
        write_phase(folder, name, ['phase.check("ran", True)'])
    clients = []
    real_client = ReadyClient.start_channels

    def noted(self, *args, **kwargs):
        clients.append(self)
        return real_client(self, *args, **kwargs)

    monkeypatch.setattr(ReadyClient, "start_channels", noted)
    before = set(threading.enumerate())
    runner.run("local", notebooks_dir=folder, out_root=tmp_path / "out")
    assert set(threading.enumerate()) - before == set()
    assert len(clients) == 2
    assert not any(client.channels_running for client in clients)


def test_a_kernels_client_should_be_ready_on_its_answer_and_fail_for_a_dead_kernel(tmp_path):
    """ReadyClient: ready once the kernel answered kernel_info on both channels (not after
    0.2 s of IOPub silence), the first cell then gets its output; a dead kernel is reported as
    dead."""
    kernel = start_kernel(kernel_name(), "p", {}, tmp_path, [])
    try:
        client = kernel.km.client()
        assert isinstance(client, ReadyClient)
        client.start_channels()
        run_sync(client.wait_for_ready)(timeout=60)
        asked = client.execute("print('only this')")
        shown = []
        while True:
            msg = run_sync(client.iopub_channel.get_msg)(timeout=30)
            if msg["parent_header"].get("msg_id") != asked:
                continue  # e.g. a kernel_info asked again while the kernel was slow to answer
            if msg["msg_type"] == "stream":
                shown.append(msg["content"]["text"])
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert shown == ["only this\n"]
        client.stop_channels()
        kernel.shutdown()
        dead = kernel.km.client()
        dead.start_channels()
        with pytest.raises(RuntimeError, match="Kernel died"):
            run_sync(dead.wait_for_ready)(timeout=30)
        dead.stop_channels()
    finally:
        kernel.shutdown()
