"""The synthetic league: seed the embedded warehouse in its initial state, and describe it.

Thirty teams of 15 players over the seasons 2021-22 to 2024-25, their box scores (PGS), the
precompute tables derived from them (PSZA, TDZA), upcoming and stale UPCG/UTCG rows, and the
incident of 2023-02-23 exactly as the original platform met it (original-system.md section 1).
Seeding is deterministic: the same seed and `today` give identical tables.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pandas as pd

from runbook_lib.errors import ParamsError, TableNotFoundError
from runbook_lib.platform import league_sql
from runbook_lib.platform.league_box import box_scores
from runbook_lib.platform.league_data import (
    INCIDENT_PLAYERS,
    SEASONS,
    make_players,
    make_schedule,
    team_games,
)
from runbook_lib.platform.league_upcoming import UPCOMING_DAYS, context_rows
from runbook_lib.platform.schema import (
    ALL_TABLES,
    PGS,
    SCHEDULE,
    UPCG,
    UPCOMING_TABLES,
    UTCG,
    Tables,
)
from runbook_lib.warehouse.base import Warehouse
from runbook_lib.warehouse.schema import TableSchema

log = logging.getLogger(__name__)

DEFAULT_SEED = 20230223
TTL_DAYS = 7  # the cleanup's TTL: upcoming rows older than today - 7 days are stale
BOOTSTRAP_DAYS = 14  # no precompute data in the first 14 days of a season


@dataclass(frozen=True)
class SeedSummary:
    """What `seed_league` loaded: counts per table and the stale rows the cleanup will meet."""

    today: dt.date
    seed: int
    seasons: int
    schedule_games: int
    schedule_dates: int
    players: int
    pgs_rows: int
    pgs_dates: int
    upcg_rows: int
    utcg_rows: int
    stale_upcg_rows: int
    stale_utcg_rows: int
    psza_rows: int
    tdza_rows: int


def league_frames(today: dt.date, seed: int = DEFAULT_SEED) -> dict[TableSchema, pd.DataFrame]:
    """Return the rows the seed loads, per table: schedule, PGS (games before today), UPCG, UTCG."""
    players = make_players(seed)
    schedules, boxes = [], []
    for season in SEASONS:
        games = make_schedule(season, seed)
        schedules.append(games)
        boxes.append(box_scores(team_games(games), players, seed, season.year))
    schedule = pd.concat(schedules, ignore_index=True)
    box = pd.concat(boxes, ignore_index=True)
    pgs = box[box["game_date"] < pd.Timestamp(today)].reset_index(drop=True)
    # Box scores land the morning after the game.
    pgs = pgs.assign(
        created_at=pd.to_datetime(pgs["game_date"]).dt.tz_localize("UTC") + pd.Timedelta(hours=32)
    )
    upcg, utcg = context_rows(schedule, pgs, players, today, seed)
    return {SCHEDULE: schedule, PGS: pgs, UPCG: upcg, UTCG: utcg}


def seed_league(
    wh: Warehouse,
    tables: Tables,
    today: dt.date,
    seed: int = DEFAULT_SEED,
    keep: tuple[str, ...] = (),
) -> SeedSummary:
    """(Re)create the local warehouse (DuckDB or the emulator) in its initial state and load the
    synthetic league, with load jobs on the emulator. Tables named in `keep` (the seed's own
    lock, on the emulator) stay."""
    refuse_unless_local(wh)
    frames = league_frames(today, seed)
    # The initial state has no backups or other leftovers of earlier runs.
    wh.reset(sorted(set(tables.datasets.values())), keep)
    with wh.session():
        for schema in ALL_TABLES:
            wh.drop_table(tables.id(schema))
            wh.ensure_table(tables.id(schema), schema)
        for schema, frame in frames.items():
            wh.load_dataframe(tables.id(schema), frame[[c for c in schema.columns if c in frame]])
        params = {
            "bootstrap_days": BOOTSTRAP_DAYS,
            "last_date": today + dt.timedelta(days=UPCOMING_DAYS),
        }
        wh.execute(league_sql.upcg_history_update(tables))
        wh.execute(league_sql.psza_insert(tables), params)
        wh.execute(league_sql.tdza_insert(tables), params)
        summary = _summary(wh, tables, today, seed, frames)
    log.info("Seeded the synthetic league for today=%s: %s", today, summary)
    return summary


def refuse_unless_local(wh: Warehouse) -> None:
    """Raise unless the warehouse lives on this machine (the DuckDB file or the emulator): the
    seed never touches Google's BigQuery."""
    if not wh.is_local:
        raise ParamsError(
            "params", "backend",
            f"is {wh.backend!r} on Google's BigQuery: the synthetic league is seeded only into a "
            "warehouse on this machine (the embedded DuckDB file or the emulator), because "
            "seeding replaces every table",
            "seed with `runbook seed --env local` or `runbook seed --env emulator`",
        )  # fmt: skip


def _summary(wh: Warehouse, tables: Tables, today: dt.date, seed: int, frames) -> SeedSummary:
    cutoff = {"cutoff": today - dt.timedelta(days=TTL_DAYS)}
    schedule, pgs = frames[SCHEDULE], frames[PGS]
    return SeedSummary(
        today=today, seed=seed, seasons=len(SEASONS),
        schedule_games=len(schedule), schedule_dates=schedule["game_date"].nunique(),
        players=pgs["player_lookup"].nunique(), pgs_rows=len(pgs), pgs_dates=pgs["game_date"].nunique(),
        upcg_rows=len(frames[UPCG]), utcg_rows=len(frames[UTCG]),
        stale_upcg_rows=wh.row_count(tables.upcg, "game_date < @cutoff", cutoff),
        stale_utcg_rows=wh.row_count(tables.utcg, "game_date < @cutoff", cutoff),
        psza_rows=wh.row_count(tables.psza), tdza_rows=wh.row_count(tables.tdza),
    )  # fmt: skip


def describe_warehouse(
    wh: Warehouse, tables: Tables, today: dt.date, ttl_days: int = TTL_DAYS
) -> dict[str, pd.DataFrame]:
    """Return what the warehouse holds: tables, seasons, stale upcoming rows, the incident dates."""
    with wh.session():
        present = [s for s in ALL_TABLES if wh.table_exists(tables.id(s))]
        for schema in (SCHEDULE, PGS, *UPCOMING_TABLES):
            if schema not in present:
                raise TableNotFoundError(str(tables.id(schema)))
        cutoff = {"cutoff": today - dt.timedelta(days=ttl_days)}
        days = sorted(INCIDENT_PLAYERS)
        stale = [wh.query(league_sql.stale_overview(tables, s), cutoff) for s in UPCOMING_TABLES]
        return {
            "tables": wh.query(league_sql.tables_overview(tables, present)),
            "seasons": wh.query(league_sql.seasons_overview(tables)),
            "stale": pd.concat(stale, ignore_index=True),
            "incident": wh.query(
                league_sql.incident_overview(tables), {"first": days[0], "last": days[-1]}
            ),
        }
