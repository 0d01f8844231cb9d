"""One executed notebook as report HTML, rendered while the run goes on (report.py assembles them).

Rendering the seven notebooks of a run with nbconvert took 2.6 s at its end. `Fragments`
renders each attempt's notebook in a worker process right after its phase ends, while the
next phase runs; the report then takes each fragment from there. A fragment is keyed by the
notebook's bytes and the results it was rendered with (the results fill in its forms), so it
is reused only when both are unchanged (e.g. not after finalise's secret scrub rewrote the
notebook) and rendered again otherwise: the page is the same bytes as rendering at the end.
A process, not a thread: in the runner's process the render holds the GIL, and the runner's
thread that relays the kernel's messages waited for it (60 cells: 2-2.7 s alone, 3.6-5.1 s
beside a rendering thread, measured). The worker is `python -m runbook_lib.run.notebook_html`
(multiprocessing's spawn would re-run the caller's `__main__`) and runs at the lowest priority:
the phase's kernel is the critical path, and on a busy machine the worker only gets what is
idle. At the end the report waits for the fragments the worker has still to write (the last
phase's, usually): it has its exporter loaded, while a first render in the runner pays for
loading nbconvert and its templates (1.9 s of a 3.2 s end of run, measured). What the worker
was not asked for, or does not deliver while alive and within WORKER_WAIT_S, is rendered in
the runner, as before.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from runbook_lib.run import static_widgets
from runbook_lib.run.forkserver import die_with_parent

# nbconvert's exporter is not documented as thread-safe: one render at a time per process
# (a caller may run two runs in threads).
_RENDER_LOCK = threading.Lock()
WORKER_WAIT_S = 20.0  # how long the report waits for a fragment the worker was asked for


@functools.cache
def _exporter():
    # One exporter per process: building one loads and compiles its templates (~0.3 s each).
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic")
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    # The notebook is validated once, after the last preprocessor, not after each of them
    # (13 validations: 0.23 s of a 1.1 s render of phase 05's notebook); the HTML is the same.
    exporter.optimistic_validation = True
    return exporter


def render(data: bytes, results: dict | None) -> str:
    """Return the HTML body of the notebook `data` (its file's bytes), forms shown as `results`."""
    import nbformat

    nb = static_widgets.make_static(nbformat.reads(data.decode("utf-8"), as_version=4), results)
    with _RENDER_LOCK:
        body, _ = _exporter().from_notebook_node(nb)
    return body


def _name(data: bytes, results_json: str) -> str:
    """Return a fragment's file name: the hashes of the notebook's bytes and of its results."""
    shown = hashlib.sha256(results_json.encode()).hexdigest()
    return f"{hashlib.sha256(data).hexdigest()}-{shown}.html"


def _results_json(results: dict | None) -> str:
    # Order kept: a form's answers show in their recorded order.
    return json.dumps(results, default=str)


class Fragments:
    """Notebook HTML rendered by one worker process, reused while notebook and results match."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="rbk-report-"))
        self._worker: subprocess.Popen | None = None
        self._asked: set[str] = set()  # the fragments the running worker was asked for

    def start(self) -> Fragments:
        """Start the worker unless it runs; it loads its exporter at once, before any request.

        A run starts it first thing: the exporter's load (nbconvert and its templates, ~1 s of
        CPU) then overlaps the start of the run, when the runner waits for its first kernel,
        instead of the first phases.
        """
        if self._worker is None or self._worker.poll() is not None:
            self._asked = set()
            self._worker = subprocess.Popen(
                [sys.executable, "-m", __name__, str(self._dir)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        return self

    def submit(self, path: Path, results: dict | None) -> None:
        """Render the notebook at `path` with `results` in the worker (started on first use)."""
        self.start()
        request = {"path": str(path), "results": _results_json(results)}
        try:
            self._worker.stdin.write(json.dumps(request) + "\n")
            self._worker.stdin.flush()
        except OSError:  # a worker that died: its notebooks are rendered when asked
            return
        self._asked.add(_name(Path(path).read_bytes(), request["results"]))

    def html(self, path: Path, results: dict | None) -> str:
        """Return the notebook's HTML: the fragment of these exact bytes and results, or a new one."""
        data = Path(path).read_bytes()
        shown = _results_json(results)
        fragment = self._dir / _name(data, shown)
        if fragment.exists() or self._delivered(fragment):
            return fragment.read_text()
        return render(data, results)

    def _delivered(self, fragment: Path) -> bool:
        """Wait for a fragment the worker was asked for while it lives; return if it came."""
        if fragment.name not in self._asked:
            return False
        deadline = time.monotonic() + WORKER_WAIT_S
        while self._worker is not None and self._worker.poll() is None:
            if fragment.exists():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return fragment.exists()

    def wait(self) -> None:
        """Wait for the worker to render everything submitted so far, and end it (for tests)."""
        if self._worker is None:
            return
        try:
            self._worker.stdin.close()
        except OSError:
            pass
        self._worker.wait()
        self._worker = None

    def close(self) -> None:
        """Stop the worker where it is and remove its fragments."""
        if self._worker is not None:
            self._worker.kill()
            self._worker.wait()
            self._worker = None
        shutil.rmtree(self._dir, ignore_errors=True)


def notebook_html(path: Path, results: dict | None, fragments: Fragments | None = None) -> str:
    """Return the report HTML of the notebook at `path`, from `fragments` when given."""
    if fragments is not None:
        return fragments.html(path, results)
    return render(Path(path).read_bytes(), results)


def _serve(folder: Path) -> None:
    """Render each requested notebook into `folder` until stdin closes (the worker's main)."""
    os.nice(19)
    # Killed with the runner: a killed run's fragments are moot, and without it the worker
    # would notice only at its next read of stdin, after the render under way, which at the
    # lowest priority on a busy machine can take seconds.
    die_with_parent()
    _warm()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            data = Path(request["path"]).read_bytes()  # named by the bytes rendered
            body = render(data, json.loads(request["results"]))
        except Exception:  # noqa: BLE001 - a notebook it cannot render is rendered when asked
            continue
        target = folder / _name(data, request["results"])
        part = target.with_suffix(".part")
        part.write_text(body)
        part.replace(target)  # whole or absent: never half a fragment


def _warm() -> None:
    """Load the exporter, its templates, markdown and highlighting by rendering a small notebook."""
    import nbformat
    from nbformat import v4

    output = v4.new_output("display_data", data={"text/html": "<b>x</b>", "text/plain": "x"})
    nb = v4.new_notebook(
        cells=[v4.new_markdown_cell("# x\n\n*x*"), v4.new_code_cell("x = 1", outputs=[output])],
        metadata={"language_info": {"name": "python", "pygments_lexer": "ipython3"}},
    )
    render(nbformat.writes(nb).encode("utf-8"), None)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
