"""The runbook's charts: where a person would rather look than read.

Each function takes the DataFrame a library call returned and gives back a matplotlib Figure,
which Jupyter shows inline and nbconvert embeds as PNG in the offline report.
"""

from __future__ import annotations

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure


def _dates(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series.astype(str))


def stale_rows_by_date(before: pd.DataFrame, after: pd.DataFrame | None, cutoff) -> Figure:
    """Plot stale upcoming rows per date and table, before and (if given) after the cleanup.

    Both frames have columns table, game_date, rows.
    """
    fig, ax = plt.subplots(figsize=(10, 3.5))
    if before.empty:
        _say_why_empty(ax, f"no stale rows older than the cutoff {cutoff}: nothing to delete")
    ax.xaxis_date()
    shown = [(table, part, "before", 0.6) for table, part in before.groupby("table")]
    if after is not None and len(after):
        shown += [(table, part, "after", 1.0) for table, part in after.groupby("table")]
    bars = [
        _day_bars(ax, part, f"C{n}", alpha, f"{table} {when}")
        for n, (table, part, when, alpha) in enumerate(shown)
    ]
    line = ax.axvline(
        pd.Timestamp(str(cutoff)), color="red", linestyle="--", label=f"cutoff {cutoff}"
    )
    ax.set_ylabel("rows")
    title = "Stale rows by date" + (
        " (after cleanup: none left)" if after is not None and after.empty else ""
    )
    ax.set_title(title)
    ax.legend(handles=[line, *bars], loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def _day_bars(ax, part: pd.DataFrame, color: str, alpha: float, label: str) -> PolyCollection:
    """Draw one bar a day wide per row (game_date, rows) as a single artist.

    What `ax.bar` draws, without its one patch per bar: the stale chart has a bar per table
    and date (hundreds), and adding each patch took 0.25 s of a 0.4 s chart.
    """
    x = mdates.date2num(_dates(part["game_date"]))
    top = part["rows"].to_numpy(dtype=float)
    left, right, ground = x - 0.5, x + 0.5, np.zeros_like(top)
    corners = [(left, ground), (left, top), (right, top), (right, ground)]
    bars = PolyCollection(
        np.stack([np.column_stack(c) for c in corners], axis=1),
        facecolors=color,
        edgecolors="none",
        alpha=alpha,
        label=label,
    )
    bars.sticky_edges.y.append(0)  # as bars: the axis starts at 0 rows, no margin below
    ax.add_collection(bars, autolim=True)
    ax.autoscale_view()
    return bars


def _say_why_empty(ax, why: str) -> None:
    """Write in the middle of an empty chart why it is empty, so no one reads it as broken."""
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, fontsize=11)


def coverage_bars(coverage: pd.DataFrame) -> Figure:
    """Plot expected (PGS) vs actual (PCF) players per date, with the coverage % on top."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if coverage.empty:
        _say_why_empty(ax, "no coverage rows for these dates: nothing was backfilled")
    labels = coverage["game_date"].astype(str)
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], coverage["expected"], width=0.4, label="PGS (expected)")
    ax.bar([i + 0.2 for i in x], coverage["actual"], width=0.4, label="PCF (written)")
    for i, (actual, pct) in enumerate(
        zip(coverage["actual"], coverage["coverage_pct"], strict=True)
    ):
        ax.annotate(f"{pct:.1f}%", (i + 0.2, actual), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("players")
    ax.set_title("Coverage by date: PGS vs PCF")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def coverage_monitor(board: pd.DataFrame, threshold_pct: float = 90.0) -> Figure:
    """Plot the dashboard view: coverage per game date from the data, with the alert line."""
    fig, ax = plt.subplots(figsize=(10, 3.5))
    if len(board):
        data = board.sort_values("game_date")
        pcts = data["coverage_pct"].astype(float).fillna(0.0)  # a game day with no box scores
        colors = ["tab:red" if p < threshold_pct else "tab:green" for p in pcts]
        ax.bar(_dates(data["game_date"]), pcts, color=colors, width=0.8)
    else:
        _say_why_empty(ax, "no game date in the window has data yet: no backfill has run")
    ax.axhline(
        threshold_pct, color="red", linestyle="--", label=f"alert below {threshold_pct:.0f}%"
    )
    ax.set_ylim(0, 110)
    ax.set_ylabel("coverage % (PCF / PGS players)")
    ax.set_title("Backfill Coverage Monitor (from the data, per game date)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
