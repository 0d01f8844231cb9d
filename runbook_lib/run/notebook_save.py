"""A running phase's notebook, saved as nbformat writes it, re-encoding only the cells that changed.

papermill saves the executing notebook before and after every cell (a run: ~250 saves).
nbformat's `writes` deep-copies the whole notebook and encodes it with `indent=1`, which only
json's pure-Python encoder does: 3.3 s of the runner's CPU in a run, on the two cores the phase
needs. Between two saves only the running cell and the notebook's metadata change, so
`NotebookSaver` keeps each cell's encoding and redoes it only when the cell's compact encoding
(json's C encoder, a small fraction of the cost) differs from the one it was made from. Any
change to a cell, wherever it comes from (an output, a display update of an earlier cell,
metadata), changes that key, so the text is always the one `nbjson.writes` returns.
"""

from __future__ import annotations

import copy
import json
import uuid

from nbformat.notebooknode import NotebookNode
from nbformat.v4.nbjson import BytesEncoder
from nbformat.v4.rwbase import split_lines, strip_transient

# nbformat's JSONWriter settings: the file a cached save writes is byte for byte its own.
_PRETTY = {
    "cls": BytesEncoder,
    "indent": 1,
    "sort_keys": True,
    "separators": (",", ": "),
    "ensure_ascii": False,
}
_COMPACT = {"cls": BytesEncoder, "sort_keys": True, "ensure_ascii": False}
_CELL_INDENT = "\n  "  # a cell sits two levels deep: {"cells": [ {...} ]}


class NotebookSaver:
    """Return a notebook's nbformat text, reusing the encoding of every unchanged cell."""

    def __init__(self) -> None:
        self._cells: list[tuple[str, str]] = []  # per position: (compact key, indented text)
        self._slot = json.dumps(f"cells-{uuid.uuid4().hex}")

    def writes(self, nb: NotebookNode) -> str:
        """Return `nbformat.v4.nbjson.writes(nb)`, without changing `nb`."""
        cells = [self._cell_text(i, cell) for i, cell in enumerate(nb.cells)]
        del self._cells[len(cells) :]
        top = NotebookNode({k: copy.deepcopy(v) for k, v in nb.items() if k != "cells"})
        top["cells"] = []
        top = strip_transient(top)
        top["cells"] = json.loads(self._slot)
        listed = f"[{_CELL_INDENT}{f',{_CELL_INDENT}'.join(cells)}\n ]" if cells else "[]"
        return json.dumps(top, **_PRETTY).replace(self._slot, listed, 1)

    def _cell_text(self, i: int, cell: NotebookNode) -> str:
        key = json.dumps(cell, **_COMPACT)
        if i < len(self._cells) and self._cells[i][0] == key:
            return self._cells[i][1]
        holder = NotebookNode(cells=[copy.deepcopy(cell)], metadata=NotebookNode())
        alone = strip_transient(split_lines(holder)).cells[0]
        text = json.dumps(alone, **_PRETTY).replace("\n", _CELL_INDENT)
        if i < len(self._cells):
            self._cells[i] = (key, text)
        else:
            self._cells.append((key, text))
        return text
