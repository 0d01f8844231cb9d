"""Generate the synthetic league's schedule, rosters and box scores as DataFrames (vectorized).

Everything is drawn from numpy generators seeded by (seed, season), never from the clock, so the
same seed gives the same league; `today` only decides which games have been played.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

TEAMS = (
    "ATL", "BOS", "BKN", "CHA", "CHI", "CLE", "DAL", "DEN", "DET", "GSW",
    "HOU", "IND", "LAC", "LAL", "MEM", "MIA", "MIL", "MIN", "NOP", "NYK",
    "OKC", "ORL", "PHI", "PHX", "POR", "SAC", "SAS", "TOR", "UTA", "WAS",
)  # fmt: skip
ROSTER = 15
GAMES_PER_TEAM = 82


@dataclass(frozen=True)
class Season:
    """One regular season: its year (the start year), first and last day, All-Star break."""

    year: int
    start: dt.date
    end: dt.date
    all_star_break: dt.date  # first of six days without games

    @property
    def label(self) -> str:
        """Return the season as people write it, e.g. 2022-23."""
        return f"{self.year}-{(self.year + 1) % 100:02d}"


SEASONS = (
    Season(2021, dt.date(2021, 10, 19), dt.date(2022, 4, 10), dt.date(2022, 2, 18)),
    Season(2022, dt.date(2022, 10, 18), dt.date(2023, 4, 9), dt.date(2023, 2, 17)),
    Season(2023, dt.date(2023, 10, 24), dt.date(2024, 4, 14), dt.date(2024, 2, 16)),
    Season(2024, dt.date(2024, 10, 22), dt.date(2025, 4, 13), dt.date(2025, 2, 14)),
)

# The incident of 2026-01-06 (original-system.md section 1): distinct PGS players per date.
INCIDENT_PLAYERS = {dt.date(2023, 2, 23): 187, dt.date(2023, 2, 24): 175, dt.date(2023, 2, 25): 180}
INCIDENT_GAMES = {dt.date(2023, 2, 23): 9, dt.date(2023, 2, 24): 8}
INCIDENT_PLAYER = ("reggiejackson", "Reggie Jackson", "DEN")
INCIDENT_GAME = "20230223_DEN_CLE"

_FIRST = (
    "Aaron Alex Andre Anthony Ben Brandon Bruce Caleb Cam Chris Cole Damian Darius De'Aaron "
    "Derrick Devin Dillon Donte Dylan Eric Evan Gary Grant Isaiah Jalen Jamal Jaren Jordan Josh "
    "Julius Kevin Kyle Lonnie Malik Marcus Mason Mike Nick Obi Paul Quentin Russell Shai Terry "
    "Trey Tyrese Victor Zach"
).split()
_LAST = (
    "Adams Allen Anderson Bailey Barnes Bell Bridges Brooks Brown Carter Collins Cooper Davis "
    "Edwards Ellis Evans Fisher Foster Green Grant Hall Harris Hayes Hill Holiday Howard Hughes "
    "Jones Kennedy Lewis Martin Mitchell Morris Murray Nelson Parker Porter Powell Reed Robinson "
    "Ross Russell Simmons Smith Thompson Turner Walker Warren Watson White Young"
).split()


def season_rng(seed: int, key: int) -> np.random.Generator:
    """Return the generator of one season (or other stream), independent of the others."""
    return np.random.default_rng([seed, key])


def make_players(seed: int) -> pd.DataFrame:
    """Return the 450 players: 15 per team, ranked by role, with stable lookups and traits."""
    rng = season_rng(seed, 0)
    n = len(TEAMS) * ROSTER
    pool = [(f, s) for f in _FIRST for s in _LAST]
    names = [pool[i] for i in rng.choice(len(pool), n, replace=False)]
    full = np.array([f"{f} {s}" for f, s in names], dtype=object)
    team = np.repeat(np.arange(len(TEAMS)), ROSTER)
    rank = np.tile(np.arange(ROSTER), len(TEAMS))
    # Reggie Jackson is DEN's sixth man, as the incident's one UPCG row needs him on DEN.
    full[TEAMS.index(INCIDENT_PLAYER[2]) * ROSTER + 5] = INCIDENT_PLAYER[1]
    lookup = pd.Series(full).str.lower().str.replace(r"[^a-z]", "", regex=True)
    zones = rng.dirichlet([4.5, 1.8, 3.7], n)
    return pd.DataFrame({
        "player_lookup": lookup,
        "universal_player_id": lookup + "_001",
        "player_full_name": full,
        "team": team,
        "rank": rank,
        "usage_base": np.clip(np.linspace(29, 13, ROSTER)[rank] + rng.normal(0, 2.5, n), 11, 33),
        "paint_share": zones[:, 0],
        "mid_share": zones[:, 1],
        "ft_pct": rng.uniform(0.62, 0.9, n),
        "ast_rate": rng.gamma(4.0, 0.025, n),
        "reb_mult": rng.gamma(5.0, 0.2, n),
        "birth": pd.to_datetime("1984-01-01") + pd.to_timedelta(rng.integers(0, 18 * 365, n), "D"),
    })  # fmt: skip


def _game_dates(season: Season, rng: np.random.Generator) -> np.ndarray:
    """Return the season's game dates: every day but Thanksgiving, Dec 24, the All-Star break and two others."""
    days = np.arange(season.start, season.end + dt.timedelta(days=1), dtype="datetime64[D]")
    nov1 = dt.date(season.year, 11, 1)
    thanksgiving = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)
    brk = np.datetime64(season.all_star_break)
    off = [np.datetime64(thanksgiving), np.datetime64(dt.date(season.year, 12, 24))]
    off += [brk + i for i in range(6)]
    base = days[~np.isin(days, off)]
    before = rng.choice(base[(base > base[0]) & (base < brk)])
    after = rng.choice(base[base > brk + 8], 2, replace=False)
    dates = base[~np.isin(base, [before, after[0]])]
    incident = np.datetime64(min(INCIDENT_GAMES))
    # The incident date must be the second date of a round (see _rounds): fix its parity.
    if incident in dates and np.flatnonzero(dates == incident)[0] % 2 == 0:
        dates = base[~np.isin(base, after)]
    return dates


def _round_robin(n: int) -> np.ndarray:
    """Return the n-1 rounds of a circle-method round robin as (rounds, n/2, 2) team slots."""
    others = np.arange(n - 1)
    rounds = []
    for r in range(n - 1):
        rot = np.roll(others, r)
        left = np.concatenate([[n - 1], rot[: n // 2 - 1]])
        rounds.append(np.stack([left, rot[n // 2 - 1 :][::-1]], axis=1))
    return np.stack(rounds)


def _rounds(rng: np.random.Generator, n_teams: int) -> np.ndarray:
    """Return 82 rounds (every team plays once per round) as (82, 15, 2) [home, away] slots."""
    rr = _round_robin(n_teams)
    k = len(rr)
    picks = np.concatenate([rng.permutation(k), rng.permutation(k), rng.permutation(k)])
    rounds = rr[picks[:GAMES_PER_TEAM]].copy()
    # Home and away swap between the first and second pass; the third pass is a coin flip.
    flip = np.zeros(rounds.shape[:2], bool)
    flip[k : 2 * k] = True
    flip[2 * k :] = rng.random(flip[2 * k :].shape) < 0.5
    rounds[flip] = rounds[flip][:, ::-1]
    return rng.permuted(rounds, axis=1)


def make_schedule(season: Season, seed: int) -> pd.DataFrame:
    """Return one season's games: each round of 15 games is split over two consecutive dates."""
    rng = season_rng(seed, season.year)
    dates = _game_dates(season, rng)
    rounds = _rounds(rng, len(TEAMS))
    n_rounds = len(rounds)
    split = rng.integers(6, 10, n_rounds)  # games on the round's first date; the rest next
    labels = rng.permutation(len(TEAMS))
    first_incident = np.datetime64(min(INCIDENT_GAMES))
    if first_incident in dates:
        r = int(np.flatnonzero(dates == first_incident)[0]) // 2
        split[r] = 15 - INCIDENT_GAMES[min(INCIDENT_GAMES)]
        split[r + 1] = INCIDENT_GAMES[max(INCIDENT_GAMES)]
        home, away = rounds[r, split[r]]
        _pin_label(labels, home, TEAMS.index("CLE"))
        _pin_label(labels, away, TEAMS.index("DEN"))
    slot = np.arange(rounds.shape[1])
    date_idx = 2 * np.arange(n_rounds)[:, None] + (slot[None, :] >= split[:, None])
    keep = date_idx < len(dates)
    games = pd.DataFrame({
        "game_date": dates[date_idx[keep]],
        "home": labels[rounds[..., 0][keep]],
        "away": labels[rounds[..., 1][keep]],
    }).sort_values(["game_date", "home"], kind="stable", ignore_index=True)  # fmt: skip
    return _name_games(games, season)


def _pin_label(labels: np.ndarray, slot: int, team: int) -> None:
    """Swap labels so that `slot` plays as `team` (a relabelling keeps the schedule valid)."""
    where = int(np.flatnonzero(labels == team)[0])
    labels[[slot, where]] = labels[[where, slot]]


def _name_games(games: pd.DataFrame, season: Season) -> pd.DataFrame:
    """Add the two game id forms: YYYYMMDD_AWAY_HOME and the NBA form 0022200886."""
    abbr = np.array(TEAMS, dtype=object)
    day = pd.Series(games["game_date"].to_numpy().astype("datetime64[D]")).dt.strftime("%Y%m%d")
    games["home_team_abbr"] = abbr[games["home"]]
    games["away_team_abbr"] = abbr[games["away"]]
    games["game_id"] = day + "_" + games["away_team_abbr"] + "_" + games["home_team_abbr"]
    seq = pd.Series(np.arange(1, len(games) + 1)).astype(str).str.zfill(5)
    games["nba_game_id"] = f"002{season.year % 100:02d}" + seq
    games["season_year"] = season.year
    games["game_type"] = "Regular Season"
    return games


def team_games(games: pd.DataFrame) -> pd.DataFrame:
    """Return two rows per game, one per team, with opponent and home flag."""
    cols = ["game_id", "game_date", "season_year"]
    home = games[cols].assign(team=games["home"], opp=games["away"], home_game=True)
    away = games[cols].assign(team=games["away"], opp=games["home"], home_game=False)
    tg = pd.concat([home, away], ignore_index=True)
    return tg.sort_values(["game_date", "game_id", "home_game"], ignore_index=True)
