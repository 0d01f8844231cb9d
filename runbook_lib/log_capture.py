"""Capture log lines for a block: the one handler the backfill, the phases and the probes use.

Standard library only. The library never configures logging, so a capture lowers its logger's
level for the block when it would drop the lines asked for, and puts it back afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


class CapturedLog(list):
    """Captured log lines: the messages in order, and their records in `records`."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def find(self, text: str) -> bool:
        """Return whether any captured line contains `text`."""
        return any(text in line for line in self)

    def expect(self, expected: list[str]) -> pd.DataFrame:
        """Return a table of the expected lines (substrings) and whether each appeared."""
        import pandas as pd

        return pd.DataFrame(
            [{"line": e, "found": self.find(e)} for e in expected], columns=["line", "found"]
        )


class _Handler(logging.Handler):
    def __init__(self, sink: list, prefixes: tuple[str, ...], level: int):
        super().__init__(level)
        self.sink, self.prefixes = sink, prefixes

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(self.prefixes):
            if isinstance(self.sink, CapturedLog):
                self.sink.records.append(record)
            self.sink.append(record.getMessage())


@contextmanager
def capture_logs(
    logger: str = "",
    prefixes: tuple[str, ...] = ("",),
    level: int = logging.INFO,
    *,
    silence: bool = False,
    into: list | None = None,
) -> Iterator[list]:
    """Collect the messages logged to `logger` (root by default) at `level` and above.

    Args:
        logger: the logger to listen on; its children's lines reach it too.
        prefixes: keep only records whose logger name starts with one of these.
        level: the lowest level kept; the logger is lowered to it for the block if needed.
        silence: stop the lines from propagating further (a probe's lines, not the phase's).
        into: the list to append to (default a new CapturedLog), yielded either way.
    """
    target = logging.getLogger(logger or None)
    sink = CapturedLog() if into is None else into
    handler = _Handler(sink, prefixes, level)
    old_level, old_propagate = target.level, target.propagate
    # The root at NOTSET passes everything; set it to `level` so the block keeps what it asked.
    if target.getEffectiveLevel() > level or target.level == logging.NOTSET and not logger:
        target.setLevel(level)
    target.addHandler(handler)
    target.propagate = old_propagate and not silence
    try:
        yield sink
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)
        target.propagate = old_propagate
