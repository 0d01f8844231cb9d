"""The daily monitor: four checks from the data itself, alerts that name the repair, deduplicated.

`check` runs the checks (the SQL is in monitor_sql.py: freshness of the day's metadata row,
coverage of PCF against PGS players, box scores on every scheduled game day, stale upcoming
rows) and returns each problem with its numbers and the exact command that repairs it.
`alert` sends one Slack-compatible message per problem (`text`, with blocks) and records each
delivered one in `monitor_alerts`, so a problem is alerted once per day however often the
monitor runs. `record` appends the run to `monitor_runs`: the evidence phase 06 and
`runbook followup` read. Standard library and the warehouse only, so the monitor function's
bundle carries it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

import pandas as pd

from runbook_lib.platform import monitor_sql as msql
from runbook_lib.platform.schema import MONITOR_ALERTS, MONITOR_RUNS, Tables
from runbook_lib.warehouse.base import Warehouse, one_connection

log = logging.getLogger("runbook.monitor")


@dataclass(frozen=True)
class Problem:
    """One problem a check found: its numbers, what it means and how to repair it."""

    check: str
    day: dt.date | None
    table: str | None
    expected: int
    actual: int | None
    coverage_pct: float | None
    env: str

    @property
    def key(self) -> str:
        """Return what identifies the problem within a day: check and date (or table)."""
        return f"{self.check}:{self.day or self.table}"

    @property
    def summary(self) -> str:
        """Return one line with the date and the numbers."""
        d = self.day
        if self.check == msql.NO_BACKFILL:
            return (
                f"{d}: no backfill ran (no metadata row; PCF holds {self.actual} of "
                f"{self.expected} PGS players)"
            )
        if self.check == msql.NO_BOX_SCORES:
            return f"{d}: games are scheduled but PGS has 0 box scores"
        if self.check == msql.LOW_COVERAGE:
            return (
                f"{d}: PCF holds {self.actual} of {self.expected} PGS players "
                f"({self.coverage_pct:.1f}% coverage)"
            )
        return f"{self.table}: {self.expected} stale upcoming rows (the TTL cleanup did not run)"

    @property
    def repair(self) -> str:
        """Return the exact command (or step) that repairs the problem."""
        backfill = (
            f"runbook backfill --env {self.env} --start-date {self.day} --end-date {self.day}"
        )
        if self.check == msql.STALE_UPCOMING:
            return f"runbook cleanup --env {self.env} --dry-run, then the --confirm line it prints"
        if self.check == msql.NO_BOX_SCORES:
            return f"load player_game_summary for {self.day} upstream (Phase 3), then {backfill}"
        return backfill

    @property
    def text(self) -> str:
        """Return the alert's text: problem, numbers and repair."""
        return f"Backfill monitor ({self.env}): {self.summary}. Repair: `{self.repair}`"


@dataclass
class MonitorResult:
    """What one monitor run checked and found, and what it alerted."""

    env: str
    day: dt.date
    window_days: int
    game_dates: int
    problems: list[Problem]
    evidence: pd.DataFrame = field(repr=False)
    sent: list[str] = field(default_factory=list)
    already_alerted: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    channel: str = "none"

    @property
    def healthy(self) -> bool:
        """Return whether no check found a problem."""
        return not self.problems

    def to_frame(self) -> pd.DataFrame:
        """Return one row per problem: check, date or table, numbers, repair."""
        cols = ["check", "problem", "repair", "alert"]
        state = {
            **dict.fromkeys(self.sent, "sent"),
            **dict.fromkeys(self.already_alerted, "already alerted today"),
            **dict.fromkeys(self.undelivered, "NOT delivered"),
        }
        return pd.DataFrame(
            [
                {
                    "check": p.check,
                    "problem": p.summary,
                    "repair": p.repair,
                    "alert": state.get(p.key, "not sent"),
                }
                for p in self.problems
            ],
            columns=cols,
        )

    def headline(self) -> str:
        """Return the one-line verdict."""
        what = f"{self.game_dates} game dates in {self.window_days} days up to {self.day}"
        if self.healthy:
            return f"HEALTHY: 4 checks over {what}, no problem"
        return f"ALERTING: {len(self.problems)} problem(s) over {what}"


def settings_for(alerts, backfill, cleanup, window_days: int = 30) -> msql.MonitorSettings:
    """Return the monitor's settings from the params' alerts, backfill and cleanup sections."""
    return msql.MonitorSettings(
        window_days=int(window_days),
        threshold_pct=float(alerts.coverage_alert_pct),
        bootstrap_days=int(backfill.bootstrap_days),
        ttl_days=int(cleanup.ttl_days),
    )


def check(
    wh: Warehouse, tables: Tables, settings: msql.MonitorSettings, today: dt.date, env: str
) -> MonitorResult:
    """Run the four checks for yesterday and the trailing window; return what they found."""
    params = {"today": today}
    with wh.session():
        evidence = wh.query(msql.window_sql(tables, settings), params)
        found = wh.query(msql.problems_sql(tables, settings), params)
    problems = [_problem(r, env) for r in found.itertuples()]
    order = {c: i for i, c in enumerate(msql.CHECKS)}
    problems.sort(key=lambda p: (order[p.check], str(p.day or p.table)))
    result = MonitorResult(
        env, today - dt.timedelta(days=1), settings.window_days, len(evidence), problems, evidence
    )
    for p in problems:
        log.debug("%s", p.text)
    (log.info if result.healthy else log.warning)("%s", result.headline())
    return result


def _problem(row, env: str) -> Problem:
    day = None if pd.isna(row.problem_date) else pd.Timestamp(row.problem_date).date()
    actual = None if pd.isna(row.actual) else int(row.actual)
    pct = None if pd.isna(row.coverage_pct) else float(row.coverage_pct)
    table = None if pd.isna(row.table_name) else str(row.table_name)
    return Problem(str(row.check_name), day, table, int(row.expected), actual, pct, env)


def payload(problem: Problem, contacts: tuple[str, ...] = ()) -> dict:
    """Return a Slack incoming-webhook message for one problem: `text`, and blocks."""
    text = problem.text + (f" Contacts: {', '.join(contacts)}" if contacts else "")
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{problem.summary}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"Repair: `{problem.repair}`"}},
        ],
    }


def alerted_today(wh: Warehouse, tables: Tables, day: dt.date) -> set[str]:
    """Return the keys of the problems already alerted for `day`."""
    table = tables.monitor_alerts
    wh.ensure_table(table, MONITOR_ALERTS)
    found = wh.query(
        f"SELECT DISTINCT alert_key FROM {table.sql} WHERE monitor_day = @day", {"day": day}
    )
    return set(found["alert_key"])


def overflow_payload(problems: list[Problem]) -> dict:
    """Return one message for the problems past the per-run cap: how many, and where to see them."""
    env = problems[0].env
    text = (
        f"Backfill monitor ({env}): {len(problems)} more problem(s) "
        f"({', '.join(sorted({p.check for p in problems}))}). "
        f"List them with `runbook monitor --env {env} --no-alert`"
    )
    return {"text": text}


@one_connection
def alert(
    wh: Warehouse,
    tables: Tables,
    result: MonitorResult,
    channel,
    run_id: str | None = None,
    max_messages: int = 20,
) -> MonitorResult:
    """Send one message per problem not yet alerted today; record each delivered one.

    A message that is not delivered (no channel, or the channel refused it) is not recorded,
    so the next run sends it again. Past `max_messages` new problems (a first deployment over
    an empty PCF history has hundreds), the rest go out as one message that says how many.
    """
    result.channel = channel.label
    if result.healthy:
        return result
    done = alerted_today(wh, tables, result.day)
    rows = []
    new = [p for p in result.problems if p.key not in done]
    result.already_alerted = [p.key for p in result.problems if p.key in done]
    if len(new) > max_messages:
        rest = new[max_messages - 1 :]
        new = new[: max_messages - 1]
        _deliver(result, channel, rows, run_id, rest)
    for p in new:
        status = _send(channel, payload(p))
        if status is None or not 200 <= status < 300:
            result.undelivered.append(p.key)
            continue
        result.sent.append(p.key)
        rows.append(_alert_row(result, p, channel.label, status, run_id))
    if rows:
        frame = pd.DataFrame(rows)
        for col in ("monitor_day", "problem_date"):
            frame[col] = frame[col].astype("dbdate")
        wh.load_dataframe(tables.monitor_alerts, frame)
    return result


def _deliver(result: MonitorResult, channel, rows: list, run_id, rest) -> None:
    """Send the overflow message for `rest`; on delivery mark each of them sent."""
    status = _send(channel, overflow_payload(rest))
    keys = [p.key for p in rest]
    if status is None or not 200 <= status < 300:
        result.undelivered.extend(keys)
        return
    result.sent.extend(keys)
    rows.extend(_alert_row(result, p, channel.label, status, run_id) for p in rest)


def _send(channel, message: dict) -> int | None:
    try:
        return channel.send(message)
    except OSError as e:  # nobody answering, or an HTTP error status: not delivered
        log.error("❌ Alert not delivered to %s: %s", channel.label, e)
        return getattr(e, "code", None)


def _alert_row(result: MonitorResult, p: Problem, channel: str, status: int, run_id) -> dict:
    return {
        "monitor_day": result.day,
        "alert_key": p.key,
        "check_name": p.check,
        "problem_date": p.day,
        "text": p.text,
        "channel": channel,
        "http_status": status,
        "sent_at": pd.Timestamp.now(tz="UTC"),
        "run_id": run_id,
    }


@one_connection
def record(wh: Warehouse, tables: Tables, result: MonitorResult, run_id: str | None = None) -> None:
    """Append the run to monitor_runs: the evidence later checks of a deployment read."""
    table = tables.monitor_runs
    wh.ensure_table(table, MONITOR_RUNS)
    row = pd.DataFrame(
        [
            {
                "monitor_day": result.day,
                "checked_at": pd.Timestamp.now(tz="UTC"),
                "window_days": result.window_days,
                "game_dates": result.game_dates,
                "problems": len(result.problems),
                "problem_keys": json.dumps([p.key for p in result.problems]),
                "alerts_sent": len(result.sent),
                "channel": result.channel,
                "run_id": run_id,
            }
        ]
    )
    row["monitor_day"] = row["monitor_day"].astype("dbdate")
    wh.load_dataframe(table, row)


@one_connection
def create_views(
    wh: Warehouse, tables: Tables, settings: msql.MonitorSettings, today: dt.date | None
) -> list[str]:
    """Create or replace the dashboard and alert views; return their names."""
    names = []
    for view, statement in msql.view_statements(tables, settings, today).items():
        wh.execute(statement)
        names.append(view.short)
    return names
