"""Draw realistic box scores for one season of the synthetic league (vectorized numpy).

Each team game picks who plays (9-13 of 15, rotation order with noise), splits 240 minutes,
then draws usage, shots by zone against the opponent's zone defense, free throws and the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from runbook_lib.platform.league_data import (
    INCIDENT_GAME,
    INCIDENT_PLAYER,
    INCIDENT_PLAYERS,
    ROSTER,
    TEAMS,
    season_rng,
)

# A full rotation's minute shares by position in the rotation (starters first).
_MINUTE_WEIGHTS = np.array([34, 33, 32, 31, 30, 26, 24, 20, 17, 14, 11, 8, 6, 5, 4], float)
_MAKE_PCT = {"paint": 0.57, "mid": 0.41, "three": 0.355}


def players_per_team_game(tg: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Return how many players play in each team game: 150-190 a date, 187/175/180 on the incident dates."""
    per_date = tg.groupby("game_date", sort=True).size()
    teams = per_date.to_numpy()
    target = rng.integers(150, 191, len(per_date))
    target = np.clip(target, 9 * teams, 13 * teams)
    dates = per_date.index.date
    for day, players in INCIDENT_PLAYERS.items():
        target[dates == day] = players
    total = pd.Series(target, index=per_date.index).reindex(tg["game_date"]).to_numpy()
    n = per_date.reindex(tg["game_date"]).to_numpy()
    # Spread the date's total evenly; a random subset of its team games gets one player more.
    order = pd.Series(rng.random(len(tg))).groupby(tg["game_date"].to_numpy()).rank(method="first")
    base = total // n
    return base + (order.to_numpy() <= total - base * n)


def _who_plays(tg: pd.DataFrame, counts: np.ndarray, rng: np.random.Generator):
    """Return (team-game index, roster rank, rotation position) of every player who plays."""
    scores = np.arange(ROSTER)[None, :] + rng.normal(0, 2.0, (len(tg), ROSTER))
    forced = (tg["game_id"] == INCIDENT_GAME).to_numpy() & (
        tg["team"] == TEAMS.index(INCIDENT_PLAYER[2])
    ).to_numpy()
    scores[forced, 5] = -100.0  # the incident's one UPCG player did play that night
    position = np.argsort(np.argsort(scores, axis=1), axis=1)
    tg_idx, rank = np.nonzero(position < counts[:, None])
    return tg_idx, rank, position[tg_idx, rank]


def _minutes(tg_idx: np.ndarray, position: np.ndarray, n_tg: int, rng) -> np.ndarray:
    """Split 240 minutes per team game by rotation position, with noise."""
    w = _MINUTE_WEIGHTS[position] * rng.lognormal(0, 0.1, len(position))
    total = np.bincount(tg_idx, w, n_tg)
    return np.round(w / total[tg_idx] * 240, 1)


def _team_traits(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return one season's team offense and zone defense adjustments (positive = weak defense)."""
    n = len(TEAMS)
    return {
        "offense": rng.normal(0, 0.015, n),
        "paint": rng.normal(0, 0.03, n),
        "mid": rng.normal(0, 0.03, n),
        "three": rng.normal(0, 0.02, n),
    }


def _shots(p: pd.DataFrame, minutes, usage, tg_idx, team, opp, rng) -> dict[str, np.ndarray]:
    """Draw field goals by zone and free throws; zone defense of the opponent moves make rates."""
    traits = _team_traits(rng)
    # Shots follow minutes x usage, scaled so a team takes about 88 a game as NBA teams do.
    load = minutes * usage
    team_load = np.bincount(tg_idx, load)[tg_idx]
    lam = load / team_load * 88 * rng.lognormal(0, 0.03, tg_idx.max() + 1)[tg_idx]
    # Half the spread of a Poisson draw: team shot totals vary about +-5 a game, as in the NBA.
    fga = np.maximum(np.round(lam + rng.normal(0, 0.5, len(lam)) * np.sqrt(lam)), 0).astype(int)
    paint = rng.binomial(fga, p["paint_share"].to_numpy())
    rest = fga - paint
    mid_share = p["mid_share"].to_numpy() / (1 - p["paint_share"].to_numpy())
    mid = rng.binomial(rest, np.clip(mid_share, 0, 1))
    three = rest - mid
    out = {"paint_attempts": paint, "mid_range_attempts": mid, "three_pt_attempts": three}
    for zone, att in (("paint", paint), ("mid", mid), ("three", three)):
        pct = _MAKE_PCT[zone] + traits["offense"][team] + traits[zone][opp]
        out[f"{zone}_makes"] = rng.binomial(att, np.clip(pct, 0.05, 0.95))
    out["mid_range_makes"] = out.pop("mid_makes")
    out["three_pt_makes"] = out.pop("three_makes")
    out["ft_attempts"] = rng.poisson(fga * 0.22 + 0.2)
    out["ft_makes"] = rng.binomial(out["ft_attempts"], p["ft_pct"].to_numpy())
    out["fg_attempts"] = fga
    out["fg_makes"] = out["paint_makes"] + out["mid_range_makes"] + out["three_pt_makes"]
    return out


def box_scores(tg: pd.DataFrame, players: pd.DataFrame, seed: int, year: int) -> pd.DataFrame:
    """Return the PGS rows of one season's team games (one row per player who played)."""
    rng = season_rng(seed, 10_000 + year)
    counts = players_per_team_game(tg, rng)
    tg_idx, rank, position = _who_plays(tg, counts, rng)
    team = tg["team"].to_numpy()[tg_idx]
    opp = tg["opp"].to_numpy()[tg_idx]
    p = players.iloc[team * ROSTER + rank].reset_index(drop=True)
    minutes = _minutes(tg_idx, position, len(tg), rng)
    usage = np.round(np.clip(p["usage_base"].to_numpy() + rng.normal(0, 3, len(p)), 10, 35), 2)
    shots = _shots(p, minutes, usage, tg_idx, team, opp, rng)
    n = len(p)
    box = pd.DataFrame({
        "player_lookup": p["player_lookup"], "universal_player_id": p["universal_player_id"],
        "player_full_name": p["player_full_name"],
        "game_id": tg["game_id"].to_numpy()[tg_idx],
        "game_date": tg["game_date"].to_numpy()[tg_idx],
        "team_abbr": np.array(TEAMS, dtype=object)[team],
        "opponent_team_abbr": np.array(TEAMS, dtype=object)[opp],
        "season_year": year, "minutes_played": minutes, "usage_rate": usage,
        "assists": rng.poisson(minutes * p["ast_rate"].to_numpy()),
        "offensive_rebounds": rng.poisson(minutes * 0.03 * p["reb_mult"].to_numpy()),
        "defensive_rebounds": rng.poisson(minutes * 0.11 * p["reb_mult"].to_numpy()),
        "steals": rng.poisson(minutes * 0.02, n), "blocks": rng.poisson(minutes * 0.012, n),
        "turnovers": rng.poisson(minutes * usage / 370),
        **shots,
        "starter_flag": position < 5, "is_active": True,
    })  # fmt: skip
    box["points"] = (
        2 * (box["paint_makes"] + box["mid_range_makes"])
        + 3 * box["three_pt_makes"]
        + box["ft_makes"]
    )
    box["win_flag"] = _wins(box, tg_idx, tg)
    return box


def _wins(box: pd.DataFrame, tg_idx: np.ndarray, tg: pd.DataFrame) -> np.ndarray:
    """Return each row's win flag; a tied game goes to the home team by one made free throw."""
    pts = np.bincount(tg_idx, box["points"].to_numpy(), len(tg))
    game = pd.factorize(tg["game_id"])[0]
    home = tg["home_game"].to_numpy()
    game_home = np.zeros(game.max() + 1)
    game_away = np.zeros(game.max() + 1)
    game_home[game[home]] = pts[home]
    game_away[game[~home]] = pts[~home]
    tied_tg = np.flatnonzero(home & (game_home[game] == game_away[game]))
    first_row = np.searchsorted(tg_idx, tied_tg)  # rows are grouped by team game
    for col in ("ft_attempts", "ft_makes", "points"):
        box.loc[first_row, col] += 1
    game_home[game[tied_tg]] += 1
    home_won = game_home > game_away
    return home_won[game[tg_idx]] == home[tg_idx]
