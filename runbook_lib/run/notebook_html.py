"""One executed notebook as report HTML, rendered while the run goes on (report.py assembles them).

Rendering the seven notebooks of a run with nbconvert took 2.6 s at its end. `Fragments`
renders each attempt's notebook in a background thread right after its phase ends, while the
next phase runs; the report then takes each fragment from there. A fragment is keyed by the
notebook's bytes and the results it was rendered with (the results fill in its forms), so it
is reused only when both are unchanged (e.g. not after finalise's secret scrub rewrote the
notebook) and rendered again otherwise: the page is the same bytes as rendering at the end.
A thread, not a process: the runner's main thread mostly waits on its kernel, and a process
would import nbconvert and build the exporter again (~1 s of CPU on a 2-core machine).
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from runbook_lib.run import static_widgets

# nbconvert's exporter is not documented as thread-safe: one render at a time per process.
_RENDER_LOCK = threading.Lock()


@functools.cache
def _exporter():
    # One exporter per process: building one loads and compiles its templates (~0.3 s each).
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic")
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    return exporter


def render(data: bytes, results: dict | None) -> str:
    """Return the HTML body of the notebook `data` (its file's bytes), forms shown as `results`."""
    import nbformat

    nb = static_widgets.make_static(nbformat.reads(data.decode("utf-8"), as_version=4), results)
    with _RENDER_LOCK:
        body, _ = _exporter().from_notebook_node(nb)
    return body


def _key(data: bytes, results: dict | None) -> tuple[str, str]:
    shown = json.dumps(results, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest(), hashlib.sha256(shown).hexdigest()


class Fragments:
    """Notebook HTML rendered in one background thread, reused while notebook and results match."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-fragments")
        self._pending: list[Future] = []
        self._html: dict[tuple[str, str], str] = {}

    def submit(self, path: Path, results: dict | None) -> None:
        """Render the notebook at `path` with `results` in the background."""
        self._pending.append(self._pool.submit(self._render, Path(path), results))

    def _render(self, path: Path, results: dict | None) -> None:
        data = path.read_bytes()  # the key is of the bytes rendered, whatever changes later
        self._html[_key(data, results)] = render(data, results)

    def html(self, path: Path, results: dict | None) -> str:
        """Return the notebook's HTML: the fragment of these exact bytes and results, or a new one."""
        self.wait()
        data = Path(path).read_bytes()
        found = self._html.get(_key(data, results))
        return found if found is not None else render(data, results)

    def wait(self) -> None:
        """Wait for the renders submitted so far (one that failed is rendered again when asked)."""
        for future in self._pending:
            future.exception()
        self._pending.clear()

    def close(self) -> None:
        """Drop what is not started yet, wait for the render under way, and stop the thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._html.clear()


def notebook_html(path: Path, results: dict | None, fragments: Fragments | None = None) -> str:
    """Return the report HTML of the notebook at `path`, from `fragments` when given."""
    if fragments is not None:
        return fragments.html(path, results)
    return render(Path(path).read_bytes(), results)
