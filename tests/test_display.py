"""How phases show themselves: HTML tables, whole tokens, log streams, charts that say why."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest

from runbook_lib.platform.cleanup import confirmation_line, plan_cleanup
from runbook_lib.run import charts, checks, display

TOKEN = (
    "delete 7972 rows from nba_analytics.upcoming_player_game_context; "
    "delete 810 rows from nba_analytics.upcoming_team_game_context"
)


def test_table_html_escapes_cells_and_lets_them_wrap():
    """Cells are escaped text that wraps; only the named raw column is HTML."""
    markup = display.table_html([("<b>x</b>", "<i>ok</i>")], ("a", "b"), raw=1)
    assert "&lt;b&gt;x&lt;/b&gt;" in markup and "<i>ok</i>" in markup
    assert "white-space:pre-wrap" in markup and "<th" in markup


def test_typed_line_is_shown_whole_in_its_own_block():
    """A line a person must type is never cut, however long."""
    long = TOKEN * 4
    shown = display.typed_line(long, "type exactly:")
    assert "<pre" in shown._repr_html_() and long in shown._repr_html_()
    assert long in repr(shown) and "…" not in repr(shown) + shown._repr_html_()


def test_cleanup_plan_view_shows_the_confirmation_whole_and_once(seeded_wh, local_params):
    """The plan table drops its token column; the whole line to type sits in a <pre> block."""
    plan = plan_cleanup(
        seeded_wh, local_params.tables, local_params.effective_today(), 7, 0.9, env="local"
    )
    line = confirmation_line(plan)
    markup = display.cleanup_plan(plan, line)._repr_html_()
    assert "<pre style=" in markup and line in markup and len(line) > 100
    assert "<th style" in markup and ">token<" not in markup
    assert f"cutoff {plan.cutoff}" in markup


def test_cleanup_plan_view_with_nothing_stale_says_so(seeded_wh, local_params):
    plan = plan_cleanup(seeded_wh, local_params.tables, dt.date(2021, 1, 1), 7, 0.9, env="local")
    assert plan.total_stale == 0
    shown = display.cleanup_plan(plan, confirmation_line(plan))
    assert "nothing to confirm" in shown._repr_html_() and "<pre" not in shown._repr_html_()


def test_git_state_reads_as_a_table_not_a_dataclass_repr():
    state = checks.GitState(True, "main", "df71416368a9", (" M notebooks/02_data_cleanup.ipynb",))
    markup = state._repr_html_()
    assert "GitState(" not in markup and "<table" in markup
    assert "df71416368a9" in markup and "1 uncommitted file(s)" in markup
    assert "notebooks/02_data_cleanup.ipynb" in markup
    assert "branch: main" in str(state)


def _texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_an_empty_stale_rows_chart_says_why():
    """With nothing stale the chart states the cutoff and that there is nothing to delete."""
    empty = pd.DataFrame(columns=["table", "game_date", "rows"])
    fig = charts.stale_rows_by_date(empty, None, dt.date(2025, 4, 3))
    assert "no stale rows older than the cutoff 2025-04-03: nothing to delete" in _texts(fig)
    full = pd.DataFrame({"table": ["t"], "game_date": ["2025-04-01"], "rows": [3]})
    assert _texts(charts.stale_rows_by_date(full, None, dt.date(2025, 4, 3))) == ""


def test_the_stale_rows_chart_draws_a_day_wide_bar_per_row_from_zero():
    """One bar per table and date, a day wide and as high as its rows; before, after, cutoff
    in the legend; the axis starts at 0 rows and reads as dates."""
    before = pd.DataFrame(
        {
            "table": ["a", "a", "b"],
            "game_date": [dt.date(2025, 3, 1), dt.date(2025, 3, 5), dt.date(2025, 3, 1)],
            "rows": [10, 30, 20],
        }
    )
    after = before[before["table"] == "b"]
    fig = charts.stale_rows_by_date(before, after, dt.date(2025, 3, 10))
    (ax,) = fig.axes
    bars = {
        c.get_label(): sorted(
            (
                round(p.vertices[:, 0].min(), 3),
                round(p.vertices[:, 0].max() - p.vertices[:, 0].min(), 3),
                p.vertices[:, 1].max(),
            )
            for p in c.get_paths()
        )
        for c in ax.collections
    }
    day = charts.mdates.date2num(pd.Timestamp("2025-03-01"))
    assert bars == {
        "a before": [(day - 0.5, 1.0, 10.0), (day + 3.5, 1.0, 30.0)],
        "b before": [(day - 0.5, 1.0, 20.0)],
        "b after": [(day - 0.5, 1.0, 20.0)],
    }
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["cutoff 2025-03-10", "a before", "b before", "b after"]
    assert ax.get_ylim()[0] == 0
    assert ax.xaxis.get_major_formatter().format_data(day) == "2025-03-01"


def test_an_empty_coverage_chart_says_why():
    empty = pd.DataFrame(columns=["game_date", "expected", "actual", "coverage_pct"])
    assert "nothing was backfilled" in _texts(charts.coverage_bars(empty))


@pytest.fixture
def kernel_root():
    """A root logger as a fresh kernel has it (no handler, WARNING); restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers, root.level = [], logging.WARNING
    yield root
    root.handlers, root.level = saved


def _basic_config(root):
    """Do what the Cloud Function module's logging.basicConfig(level=INFO) does at import."""
    root.addHandler(logging.StreamHandler())
    root.setLevel(logging.INFO)


def test_route_logs_sends_info_to_stdout_and_warnings_to_stderr(kernel_root, capsys):
    """INFO reads plainly on stdout (JupyterLab paints stderr pink); WARNING stays on stderr."""
    _basic_config(kernel_root)
    display.route_logs()
    display.route_logs()  # a second phase in the same kernel changes nothing
    logging.getLogger().setLevel(logging.INFO)  # as Phase.capture_logs does for its block
    logging.getLogger("runbook_lib.platform.backfill").info("PRE-FLIGHT CHECK passed")
    logging.getLogger("runbook_lib.platform.backfill").warning("coverage 92% below 95%")
    logging.getLogger("urllib3").info("connection pool chatter")
    out, err = capsys.readouterr()
    assert out == "PRE-FLIGHT CHECK passed\n"
    assert err == "WARNING: coverage 92% below 95%\n"


def test_route_logs_leaves_info_off_outside_a_capture(kernel_root, capsys):
    _basic_config(kernel_root)
    display.route_logs()
    logging.getLogger("runbook_lib.run.phase").info("check x: ok")
    assert capsys.readouterr() == ("", "")
