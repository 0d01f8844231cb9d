"""Build the UPCG and UTCG rows of the synthetic league: upcoming, recent and stale historical.

What the cleanup and the backfill safeguards meet in production (original-system.md section 1):
- rows for the scheduled games from today to a few days ahead, and the last days before today
  (a 7-day TTL keeps some of these and deletes others);
- stale rows for many past dates left by historical backfills, most complete (UPCG covers at
  least 90% of the date's PGS players, so the pre-flight passes), some partial;
- the incident exactly: 1 UPCG row on 2023-02-23, 68 on 2023-02-24, none on 2023-02-25.
The history-derived UPCG columns (rest, minutes, usage) are filled afterwards in SQL.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from runbook_lib.platform.league_data import (
    INCIDENT_GAME,
    INCIDENT_PLAYER,
    INCIDENT_PLAYERS,
    TEAMS,
    season_rng,
)

UPCOMING_DAYS = 3  # today .. today + 3 are "upcoming"
RECENT_DAYS = 10  # the last 10 days before today hold complete rows (7 kept by the TTL)
# Stale historical dates per season: (complete, partial, UTCG only). Scaled from the
# 74 / 206 / 159 / 4 UPCG dates and 74 / 214 / 162 UTCG dates the Dec 2025 backfill found,
# to keep the stale share of each table under the cleanup's 90% cap.
STALE_DATES = {2021: (7, 2, 0), 2022: (20, 2, 2), 2023: (16, 2, 1), 2024: (1, 0, 0)}
# No stale date but the incident's near it, so the integration test meets only the incident.
QUIET = (dt.date(2023, 2, 20), dt.date(2023, 2, 28))
UPCOMING_ROSTER = 13  # players listed per team for an upcoming game (two are inactive)


def _day(values) -> np.ndarray:
    return np.asarray(values, dtype="datetime64[D]")


def _pick_stale_dates(pgs: pd.DataFrame, today: dt.date, rng) -> pd.DataFrame:
    """Return the stale historical dates with their kind: complete, partial or utcg_only."""
    dates = pgs[["game_date", "season_year"]].drop_duplicates()
    day = _day(dates["game_date"])
    eligible = (day < _day(today - dt.timedelta(days=RECENT_DAYS))) & ~(
        (day >= _day(QUIET[0])) & (day <= _day(QUIET[1]))
    )
    picked = []
    for year, (complete, partial, extra) in STALE_DATES.items():
        pool = dates[eligible & (dates["season_year"] == year).to_numpy()]["game_date"].to_numpy()
        kinds = ["complete"] * complete + ["partial"] * partial + ["utcg_only"] * extra
        take = rng.choice(pool, min(len(kinds), len(pool)), replace=False)
        picked.append(pd.DataFrame({"game_date": take, "kind": kinds[: len(take)]}))
    return pd.concat(picked, ignore_index=True)


def _stale_rows(pgs: pd.DataFrame, stale: pd.DataFrame, rng) -> pd.DataFrame:
    """Return PGS rows standing for the stale UPCG rows: ~97% of a complete date, a few games of a partial one."""
    rows = pgs.merge(stale[stale["kind"] != "utcg_only"], on="game_date")
    keep = rng.random(len(rows)) < 0.97
    # A partial run wrote some of the date's games only (one loop per partial date, a handful).
    for day in stale.loc[stale["kind"] == "partial", "game_date"]:
        on_day = (rows["game_date"] == day).to_numpy()
        games = np.sort(rows.loc[on_day, "game_id"].unique())
        kept = rng.choice(games, max(1, round(len(games) * rng.uniform(0.1, 0.6))), replace=False)
        keep &= ~on_day | rows["game_id"].isin(kept).to_numpy()
    return rows[keep]


def _incident_rows(pgs: pd.DataFrame, today: dt.date, rng) -> pd.DataFrame:
    """Return the incident's UPCG rows: reggiejackson on 02-23, 68 players of 6 of 8 games on 02-24."""
    second = sorted(INCIDENT_PLAYERS)[1]
    if max(INCIDENT_PLAYERS) >= today - dt.timedelta(days=RECENT_DAYS):
        return pgs.iloc[:0]  # with `today` that early, those dates are recent, not stale
    one = pgs[(pgs["game_id"] == INCIDENT_GAME) & (pgs["player_lookup"] == INCIDENT_PLAYER[0])]
    day2 = pgs[pgs["game_date"] == pd.Timestamp(second)]
    if one.empty or day2.empty:
        return pgs.iloc[:0]
    games = rng.choice(np.sort(day2["game_id"].unique()), 6, replace=False)
    candidates = day2[day2["game_id"].isin(games)]
    return pd.concat(
        [one, candidates.iloc[np.sort(rng.choice(len(candidates), 68, replace=False))]]
    )


def _upcoming_rows(schedule: pd.DataFrame, players: pd.DataFrame, today: dt.date) -> pd.DataFrame:
    """Return one row per listed player of each team scheduled from today to today+UPCOMING_DAYS."""
    day = _day(schedule["game_date"])
    ahead = schedule[(day >= _day(today)) & (day <= _day(today + dt.timedelta(days=UPCOMING_DAYS)))]
    sides = []
    for team, opp in (("home", "away"), ("away", "home")):
        sides.append(ahead.assign(team=ahead[team], opp=ahead[opp]))
    games = pd.concat(sides, ignore_index=True)
    listed = players[players["rank"] < UPCOMING_ROSTER]
    rows = games.merge(listed, on="team")
    abbr = np.array(TEAMS, dtype=object)
    return rows.assign(team_abbr=abbr[rows["team"]], opponent_team_abbr=abbr[rows["opp"]])


def context_rows(
    schedule: pd.DataFrame, pgs: pd.DataFrame, players: pd.DataFrame, today: dt.date, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (UPCG rows without the history columns, UTCG rows) for the seeded warehouse."""
    rng = season_rng(seed, 20_000)
    day = _day(pgs["game_date"])
    recent = pgs[day >= _day(today - dt.timedelta(days=RECENT_DAYS))]
    stale = _pick_stale_dates(pgs, today, rng)
    past = pd.concat([recent, _stale_rows(pgs, stale, rng), _incident_rows(pgs, today, rng)])
    keys = ["player_lookup", "universal_player_id", "game_id", "game_date"]
    cols = keys + ["team_abbr", "opponent_team_abbr"]
    upcoming = _upcoming_rows(schedule, players, today)
    upcg = pd.concat([past[cols], upcoming[cols]], ignore_index=True)
    upcg = upcg.sort_values(["game_date", "game_id", "player_lookup"], ignore_index=True)
    utcg_only = stale.loc[stale["kind"] == "utcg_only", "game_date"]
    game_ids = pd.concat(
        [upcg["game_id"], schedule.loc[schedule["game_date"].isin(utcg_only), "game_id"]]
    )
    upcg = _player_columns(upcg, players, schedule, seed, rng)
    return upcg, _team_rows(schedule, game_ids.drop_duplicates(), rng)


def team_pace(schedule: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Return each team's pace per season (possessions per 48 minutes)."""
    frames = []
    for year in sorted(schedule["season_year"].unique()):
        rng = season_rng(seed, 30_000 + int(year))
        frames.append(pd.DataFrame({"season_year": year, "team_abbr": TEAMS,
                                    "pace": rng.normal(99.0, 2.5, len(TEAMS))}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _player_columns(
    upcg: pd.DataFrame, players: pd.DataFrame, schedule, seed: int, rng
) -> pd.DataFrame:
    """Fill the UPCG columns that do not come from PGS history: age, projections, pace, stars out."""
    n = len(upcg)
    p = players.set_index("player_lookup").loc[upcg["player_lookup"]]
    when = pd.to_datetime(upcg["game_date"])
    season = schedule.drop_duplicates("game_id").set_index("game_id")["season_year"]
    pace = team_pace(schedule, seed).set_index(["season_year", "team_abbr"])["pace"]
    year = season.reindex(upcg["game_id"]).to_numpy()
    own = pace.reindex(pd.MultiIndex.from_arrays([year, upcg["team_abbr"]])).to_numpy()
    opp = pace.reindex(pd.MultiIndex.from_arrays([year, upcg["opponent_team_abbr"]])).to_numpy()
    opp_last_10 = np.round(opp + rng.normal(0, 1.0, n), 1)
    stamp = when.dt.tz_localize("UTC") - pd.Timedelta(hours=8)  # written the evening before
    return upcg.assign(
        has_prop_line=(p["rank"].to_numpy() < 9) & (rng.random(n) < 0.8),
        player_age=((when - p["birth"].to_numpy()).dt.days // 365.25).astype("int64").to_numpy(),
        projected_usage_rate=np.round(np.clip(p["usage_base"].to_numpy() + rng.normal(0, 2, n), 10, 35), 2),
        star_teammates_out=rng.choice([0, 1, 2], n, p=[0.85, 0.12, 0.03]),
        pace_differential=np.round(opp_last_10 - own, 1),
        opponent_pace_last_10=opp_last_10,
        created_at=stamp, processed_at=stamp,
    )  # fmt: skip


def _team_rows(schedule: pd.DataFrame, game_ids: pd.Series, rng) -> pd.DataFrame:
    """Return two UTCG rows per game: rest from the schedule, spread and total drawn per game."""
    games = schedule[schedule["game_id"].isin(game_ids)].reset_index(drop=True)
    spread = np.round(rng.normal(-2.5, 6.0, len(games)) * 2) / 2  # home view; negative = favourite
    total = np.round(rng.normal(226, 7, len(games)) * 2) / 2
    rest = _team_rest(schedule)
    sides = []
    for side, opp, sign, home in (
        ("home_team_abbr", "away_team_abbr", 1, True),
        ("away_team_abbr", "home_team_abbr", -1, False),
    ):
        sides.append(pd.DataFrame({
            "team_abbr": games[side], "game_id": games["game_id"], "game_date": games["game_date"],
            "season_year": games["season_year"], "opponent_team_abbr": games[opp], "home_game": home,
            "game_spread": sign * spread, "game_total": total,
        }))  # fmt: skip
    rows = pd.concat(sides, ignore_index=True).merge(rest, on=["team_abbr", "game_id"])
    stamp = pd.to_datetime(rows["game_date"]).dt.tz_localize("UTC") - pd.Timedelta(hours=8)
    rows = rows.assign(created_at=stamp, processed_at=stamp)
    return rows.sort_values(["game_date", "game_id", "team_abbr"], ignore_index=True)


def _team_rest(schedule: pd.DataFrame) -> pd.DataFrame:
    """Return each team's days of rest before each game (a back-to-back is 0 days)."""
    home = schedule[["game_id", "game_date", "season_year", "home_team_abbr"]].rename(
        columns={"home_team_abbr": "team_abbr"}
    )
    away = schedule[["game_id", "game_date", "season_year", "away_team_abbr"]].rename(
        columns={"away_team_abbr": "team_abbr"}
    )
    tg = pd.concat([home, away]).sort_values(["team_abbr", "game_date"], ignore_index=True)
    gap = tg.groupby(["team_abbr", "season_year"])["game_date"].diff().dt.days - 1
    rest = gap.fillna(3).astype("int64")  # a season opener counts as well rested
    return pd.DataFrame({"team_abbr": tg["team_abbr"], "game_id": tg["game_id"],
                         "team_days_rest": rest, "team_back_to_back": rest == 0})  # fmt: skip
