"""The deployment window: whether a run may start now, and if not, why and when it next may.

The seed recommends "non-peak hours, with team available for monitoring". Params hold the
allowed days and hours and the blackout spans (the nightly backfill, the 04:00 America/New_York
cleanup) in one time zone (`deployment_window`, config.py). Phase 00 checks the instant it
runs at; a test passes that instant (`at`), never reads the wall clock. A run outside the window
fails phase 00 with the next allowed time, unless `deployment_window.override_reason` is given,
which is recorded.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from runbook_lib import clock
from runbook_lib.config import WEEKDAYS, DeploymentWindowConfig
from runbook_lib.errors import ParamsError
from runbook_lib.run.display import facts_table

# How far ahead the next allowed minute is looked for: a week and a day covers any weekly window.
_HORIZON = dt.timedelta(days=8)


def _minute(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _inside(span: str, minute: int) -> bool:
    """Return whether a minute of the day falls in `HH:MM-HH:MM` (end excluded; may wrap midnight)."""
    start, end = (_minute(x) for x in span.split("-"))
    return start <= minute < end if start <= end else (minute >= start or minute < end)


def closed_because(cfg: DeploymentWindowConfig, local: dt.datetime) -> str | None:
    """Return why the window is closed at a local time (None when it is open)."""
    day = WEEKDAYS[local.weekday()]
    if day not in cfg.days:
        return f"{day} is not a deployment day ({', '.join(cfg.days)})"
    minute = local.hour * 60 + local.minute
    if not _inside(cfg.hours, minute):
        return f"outside the deployment hours {cfg.hours}"
    for span, why in cfg.blackouts.items():
        if _inside(span, minute):
            return f"inside the blackout {span}: {why}"
    return None


def next_open(cfg: DeploymentWindowConfig, at: dt.datetime) -> dt.datetime | None:
    """Return the first whole minute after `at` when the window is open (None: not within 8 days)."""
    zone = zoneinfo.ZoneInfo(cfg.time_zone)
    # Stepped in UTC and converted, so a daylight-saving change is a real hour, not a wall-clock one.
    t = at.astimezone(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    end = t + _HORIZON
    while t < end:
        if closed_because(cfg, t.astimezone(zone)) is None:
            return t.astimezone(zone)
        t += dt.timedelta(minutes=1)
    return None


def _shown(t: dt.datetime) -> str:
    return f"{t:%a %Y-%m-%d %H:%M} {t.tzname()} ({t.astimezone(dt.UTC):%H:%M} UTC)"


def check(
    cfg: DeploymentWindowConfig, at: dt.datetime | str | None = None, on_this_machine: bool = True
) -> dict:
    """Return the window at `at` (an aware time or ISO text; None or "": now): open or why not.

    A given instant is for tests and runs on this machine: on a shared warehouse (staging, prod)
    it would be a way around the window without a reason, so it is refused there.
    """
    given = bool(at)
    if given and not on_this_machine:
        raise ParamsError(
            "phase parameters",
            "phases.00_preflight.window_at",
            f"{at!r} is accepted only for a warehouse on this machine; on a shared one the "
            f"window is checked at the clock",
            "remove it; to deploy outside the window give "
            "--set deployment_window.override_reason='...', which the run records",
        )
    when = dt.datetime.fromisoformat(at) if isinstance(at, str) and at else at or clock.now()
    if when.tzinfo is None:
        raise ValueError(f"{at!r} has no UTC offset: give the time as 2026-01-10T04:05:00-05:00")
    local = when.astimezone(zoneinfo.ZoneInfo(cfg.time_zone))
    why = closed_because(cfg, local)
    nxt = next_open(cfg, when) if why else None
    return {
        "at": local.isoformat(timespec="minutes"),
        "at_source": "given (the phase's window_at parameter)" if given else "the clock",
        "time_zone": cfg.time_zone,
        "days": ", ".join(cfg.days),
        "hours": cfg.hours,
        "blackouts": "; ".join(f"{s} ({w})" for s, w in cfg.blackouts.items()) or "none",
        "open": why is None,
        "closed_because": why,
        "next_allowed": _shown(nxt) if nxt else (None if why is None else "none within 8 days"),
        "override_reason": cfg.override_reason if why else None,
    }


def detail(window: dict) -> str:
    """Return the window's state in one line: open, closed with the next allowed time, overridden."""
    at = f"at {window['at']} ({window['at_source']})"
    if window["open"]:
        return f"open {at}"
    closed = f"closed {at}: {window['closed_because']}; next allowed {window['next_allowed']}"
    if window.get("override_reason"):
        return f'{closed}; OVERRIDDEN with the reason "{window["override_reason"]}"'
    return (
        f"{closed} (to fix this, start the run then, or only with a reason a reviewer accepts "
        f"--set deployment_window.override_reason='...', which the run records)"
    )


def facts(window: dict):
    """Return the window as a facts table."""
    keys = (
        "at",
        "at_source",
        "time_zone",
        "days",
        "hours",
        "blackouts",
        "open",
        "closed_because",
        "next_allowed",
        "override_reason",
    )
    return facts_table(
        [(k, window[k]) for k in keys if window.get(k) is not None], "deployment window"
    )
