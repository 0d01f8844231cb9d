"""Phase 05's monitor steps: the views, the monitor's run, and three problems planted and removed.

On local, phase 05 shows the monitor catching real problems: it plants a date that lost PCF
rows, a night with no metadata row (yesterday) and a game day with no box scores (a game
scheduled on an off-day), runs the monitor, which must alert all three through the channel,
then removes exactly what it planted: the saved rows go back, the planted game is deleted,
and the digests of the three tables equal those taken before planting.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pandas as pd

from runbook_lib import clock
from runbook_lib.errors import MonitorDemoError
from runbook_lib.platform import monitor, monitor_sql
from runbook_lib.platform.schema import Tables
from runbook_lib.run.forkserver import ForkClient
from runbook_lib.run.params import Params
from runbook_lib.warehouse.base import RowsDigest, Warehouse, one_connection

if TYPE_CHECKING:
    from runbook_lib.platform.cloud_function.local import LocalFunctionServer

LOST_ROWS = 50
PLANTED_GAME = "PLANTED_MONITOR_{:%Y%m%d}"
# What identifies a row of each table the plant touches, for the before/after digests.
_KEYS = {
    "pcf": ("game_date", "player_lookup", "game_id", "total_composite_adjustment"),
    "backfill_metadata": ("analysis_date", "run_id", "tracked_at", "status", "actual_players"),
    "schedule": ("game_id", "game_date"),
}


def settings(params: Params, window_days: int = 30) -> monitor_sql.MonitorSettings:
    """Return the monitor's settings of an environment."""
    return monitor.settings_for(params.alerts, params.backfill, params.cleanup, window_days)


@one_connection
def create_views(wh: Warehouse, params: Params, window_days: int = 30) -> pd.DataFrame:
    """Create (or replace) the dashboard and alert views; return their names and how to open them.

    An environment with a fixed `today` (local) gets it written into the views; the others
    get CURRENT_DATE(), so a view opened tomorrow shows tomorrow's window.
    """
    names = monitor.create_views(wh, params.tables, settings(params, window_days), params.today)
    how = "SELECT * FROM `{}.{}`"
    return pd.DataFrame(
        {"view": names, "open it with": [how.format(params.project, n) for n in names]}
    )


@one_connection
def run_monitor(
    wh: Warehouse, params: Params, today: dt.date, channel, run_id: str, window_days: int = 30
) -> monitor.MonitorResult:
    """Run the daily monitor as the schedule does: check, alert through `channel`, record."""
    result = monitor.check(wh, params.tables, settings(params, window_days), today, params.env)
    monitor.alert(wh, params.tables, result, channel, run_id=run_id)
    monitor.record(wh, params.tables, result, run_id=run_id)
    return result


MONITOR_ENTRY_POINT = "monitor_backfill_coverage"


@dataclass
class MonitorFunction:
    """The monitor's Cloud Function as phase 05 fires it: served here (on local), or not here."""

    params: Params
    run_id: str = ""
    server: LocalFunctionServer | None = None

    def trigger(self) -> dict:
        """Send the served function one scheduled event; return its HTTP status and summary.

        The event's id is the run's tag, so the monitor run it records is the deployment's own
        and never counts as evidence that monitoring is active
        (post_deployment.monitor_runs_after).
        """
        if self.server is None:
            return {
                "served": False,
                "note": "deployed by its plan (`runbook function plan`); fired daily by its "
                "scheduler job at " + self.params.monitor_function.schedule,
            }
        from runbook_lib.platform.cloud_function import local

        topic, project = self.params.monitor_function.topic, self.params.project
        event = local.pubsub_event({}, topic, project, clock.run_tag(self.run_id) or None)
        status, _ = self.server.post(*local.encode_event(*event, "structured"))
        # The function prints its summary before it answers, unbuffered: the line is there now.
        output = self.server.output()
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        return {
            "served": True,
            "started": self.server.started,  # forked from the run's fork server, or launched
            "http_status": status,
            "summary": lines[-1] if lines else {},
        }


@contextmanager
def monitor_function(params: Params, channel, run_id: str = "") -> Iterator[MonitorFunction]:
    """Serve the monitor's Cloud Function for the block, the way phase 03 serves the cleanup's.

    On this machine the bundle's monitor entry point is started under functions-framework on
    127.0.0.1 at once, without waiting: it boots while the block does its other work, and
    `trigger` waits for it. Its alerts go to `channel` (the local receiver). Elsewhere nothing
    is served: the function is deployed by its plan and fired by its scheduler job.
    """
    if not params.is_local or not getattr(channel, "url", None):
        yield MonitorFunction(params, run_id)
        return
    from runbook_lib.platform.cloud_function import local
    from runbook_lib.platform.cloud_function.bundle import build_bundle

    env = params.function_config(channel.url).to_env()
    with tempfile.TemporaryDirectory(prefix="rbk-monitor-") as folder:
        bundle = build_bundle(folder, params.engine)
        server = local.LocalFunctionServer(bundle, MONITOR_ENTRY_POINT, "cloudevent", env)
        try:
            yield MonitorFunction(params, run_id, server.launch(ForkClient.from_env()))
        finally:
            server.stop(answered=True)  # the block's own server: only trigger posts there


def _same_check(result: monitor.MonitorResult | None, env: str, today: dt.date, days: int) -> bool:
    """Return whether `result` is the monitor's check of `env` for `today` over `days` days."""
    if result is None:
        return False
    return (result.env, result.day, result.window_days) == (
        env,
        today - dt.timedelta(days=1),
        days,
    )


def channel_not_configured(params: Params) -> bool:
    """Return whether the params say explicitly that there is no alert channel (and no webhook)."""
    return params.alerts.no_channel and not params.alerts.webhook_url


def dashboard(wh: Warehouse, tables: Tables) -> pd.DataFrame:
    """Return the dashboard view's rows: per game date of the window, newest first."""
    return wh.query(
        f"SELECT * FROM {tables.view(monitor_sql.DASHBOARD_VIEW).sql} ORDER BY game_date DESC"
    )


def alert_view(wh: Warehouse, tables: Tables) -> pd.DataFrame:
    """Return the alert view's rows: one per problem."""
    return wh.query(
        f"SELECT * FROM {tables.view(monitor_sql.ALERT_VIEW).sql} ORDER BY check_name, problem_date"
    )


@dataclass
class Planted:
    """What phase 05 planted, with the rows it took away, so it can put back exactly them."""

    lost_date: dt.date
    night: dt.date
    game_day: dt.date
    pcf_rows: pd.DataFrame = field(repr=False)
    metadata_rows: pd.DataFrame = field(repr=False)
    before: dict[str, RowsDigest] = field(repr=False)

    @property
    def keys(self) -> list[str]:
        """Return the alert keys the monitor must report for the three problems."""
        return [
            f"{monitor_sql.NO_BACKFILL}:{self.night}",
            f"{monitor_sql.LOW_COVERAGE}:{self.lost_date}",
            f"{monitor_sql.NO_BOX_SCORES}:{self.game_day}",
        ]

    def to_frame(self) -> pd.DataFrame:
        """Return the three problems as planted."""
        return pd.DataFrame(
            [
                {
                    "problem": "a date that lost PCF rows",
                    "date": self.lost_date,
                    "planted": f"{len(self.pcf_rows)} PCF rows deleted",
                },
                {
                    "problem": "a night with no metadata row",
                    "date": self.night,
                    "planted": f"{len(self.metadata_rows)} metadata row(s) deleted",
                },
                {
                    "problem": "a game day with no box scores",
                    "date": self.game_day,
                    "planted": f"game {PLANTED_GAME.format(self.game_day)} scheduled on an off-day",
                },
            ]
        )


def digests(wh: Warehouse, tables: Tables) -> dict[str, RowsDigest]:
    """Return the digest of each table the plant touches."""
    return {name: wh.rows_digest(getattr(tables, name), key) for name, key in _KEYS.items()}


def plant_problems(
    wh: Warehouse, tables: Tables, evidence: pd.DataFrame, today: dt.date, window_days: int
) -> Planted:
    """Plant the three problems in the window of `evidence` (the monitor's, before planting)."""
    night = today - dt.timedelta(days=1)
    played = evidence[(evidence["pcf_players"] >= LOST_ROWS) & ~evidence["bootstrap"].astype(bool)]
    days = sorted(pd.Timestamp(d).date() for d in played["game_date"])
    scheduled = {pd.Timestamp(d).date() for d in evidence["game_date"]}
    off_days = [
        today - dt.timedelta(days=i)
        for i in range(2, window_days + 1)
        if today - dt.timedelta(days=i) not in scheduled
    ]
    if night not in scheduled or len([d for d in days if d != night]) == 0 or not off_days:
        raise MonitorDemoError(night, window_days)
    lost, game_day = [d for d in days if d != night][-1], off_days[0]
    before = digests(wh, tables)
    pcf = wh.query(
        f"SELECT * FROM {tables.pcf.sql} WHERE game_date = @d "
        f"ORDER BY player_lookup LIMIT {LOST_ROWS}",
        {"d": lost},
    )
    meta = wh.query(
        f"SELECT * FROM {tables.backfill_metadata.sql} WHERE analysis_date = @d", {"d": night}
    )
    wh.execute(
        f"DELETE FROM {tables.pcf.sql} WHERE game_date = @d AND player_lookup IN UNNEST(@p)",
        {"d": lost, "p": list(pcf["player_lookup"])},
    )
    wh.execute(f"DELETE FROM {tables.backfill_metadata.sql} WHERE analysis_date = @d", {"d": night})
    # The season of the neighbouring game day, or the planted game would open a season of its
    # own and sit in that season's bootstrap window, where no check looks.
    season = wh.query(
        f"SELECT MAX(season_year) AS s FROM {tables.schedule.sql} WHERE game_date = @d", {"d": lost}
    )["s"].iloc[0]
    game = pd.DataFrame(
        [
            {
                "game_id": PLANTED_GAME.format(game_day),
                "nba_game_id": "0",
                "game_date": game_day,
                "season_year": int(season),
                "home_team_abbr": "DEN",
                "away_team_abbr": "CLE",
                "game_type": "Regular Season",
            }
        ]
    )
    game["game_date"] = game["game_date"].astype("dbdate")
    wh.load_dataframe(tables.schedule, game)
    return Planted(lost, night, game_day, pcf, meta, before)


def remove_planted(wh: Warehouse, tables: Tables, planted: Planted) -> pd.DataFrame:
    """Put back exactly what was planted; return each table's digest before and after."""
    wh.load_dataframe(tables.pcf, planted.pcf_rows)
    if len(planted.metadata_rows):
        wh.load_dataframe(tables.backfill_metadata, planted.metadata_rows)
    wh.execute(
        f"DELETE FROM {tables.schedule.sql} WHERE game_id = @g",
        {"g": PLANTED_GAME.format(planted.game_day)},
    )
    after = digests(wh, tables)
    return pd.DataFrame(
        [
            {
                "table": getattr(tables, n).short,
                "rows before": planted.before[n].rows,
                "rows after": after[n].rows,
                "same rows": planted.before[n] == after[n],
            }
            for n in _KEYS
        ]
    )


@dataclass
class Demo:
    """Phase 05's demonstration: what was planted, what the monitor found and sent, what was removed."""

    ran: bool
    why_not: str = ""
    planted: Planted | None = None
    found: list[str] = field(default_factory=list)
    received: int = 0
    removed: pd.DataFrame | None = None
    after: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame | str:
        """Return the planted problems with whether each was alerted, or why nothing was planted."""
        if not self.ran:
            return f"no problems planted: {self.why_not}"
        frame = self.planted.to_frame()
        frame["alerted"] = [k in self.found for k in self.planted.keys]
        return frame


@one_connection
def demonstrate(
    wh: Warehouse,
    params: Params,
    today: dt.date,
    channel,
    run_id: str,
    window_days: int = 30,
    before: monitor.MonitorResult | None = None,
) -> Demo:
    """On local with the local receiver: plant three problems, monitor and alert, remove them.

    The alert rows of the planted problems are removed with them, so a later run on the same
    day plants and alerts again; nothing of the demonstration is recorded as a monitor run.
    `before`: the daily run's result just before, on the same data (phase 05): its check is
    not run a second time (used only for the same environment, day and window).
    """
    if not params.is_local or channel.received_count() is None:
        return Demo(
            False,
            "only on local, through the local receiver (a real channel would "
            "get three false alerts)",
        )
    cfg = settings(params, window_days)
    if not _same_check(before, params.env, today, window_days):
        before = monitor.check(wh, params.tables, cfg, today, params.env)
    planted = plant_problems(wh, params.tables, before.evidence, today, window_days)
    try:
        start = channel.received_count()
        caught = monitor.check(wh, params.tables, cfg, today, params.env)
        # Only the planted problems are alerted here: the others are the daily run's to send.
        ours = [p for p in caught.problems if p.key in planted.keys]
        monitor.alert(wh, params.tables, replace(caught, problems=ours), channel, run_id=run_id)
        received = channel.received_count() - start
    finally:
        removed = remove_planted(wh, params.tables, planted)
        wh.execute(
            f"DELETE FROM {params.tables.monitor_alerts.sql} WHERE run_id = @r "
            "AND alert_key IN UNNEST(@k)",
            {"r": run_id, "k": planted.keys},
        )
    after = monitor.check(wh, params.tables, cfg, today, params.env)
    return Demo(
        True,
        "",
        planted,
        [p.key for p in caught.problems],
        received,
        removed,
        [p.key for p in after.problems],
        [p.key for p in before.problems],
    )
