"""The v1_4factors statement on the warehouse: the fact sheet's worked examples (4.6)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from runbook_lib.platform.factors import build_staging
from runbook_lib.platform.schema import PCF_STAGING

D = dt.date(2023, 2, 23)
RUN = "run-factors"


# -- small fixture builders (also used by test_backfill) -----------------------------------------
def load(wh, table, rows: list[dict]) -> None:
    """Append rows (dicts with the same keys) to a table; no rows, no load."""
    if rows:
        wh.load_dataframe(table, pd.DataFrame(rows))


def pgs_row(player, day, team="DEN", opp="CLE", minutes=30.0, usage=25.0, game_id=None):
    """Return one PGS row with every required column."""
    return {
        "player_lookup": player,
        "universal_player_id": f"{player}_001",
        "game_id": game_id or f"{day:%Y%m%d}_{opp}_{team}",
        "game_date": day,
        "team_abbr": team,
        "opponent_team_abbr": opp,
        "season_year": 2022,
        "minutes_played": minutes,
        "usage_rate": usage,
        "starter_flag": True,
        "win_flag": False,
        "is_active": True,
    }


def upcg_row(player, day, opp="CLE", **context):
    """Return one UPCG row: the fact sheet's fresh player unless context says otherwise."""
    row = {
        "player_lookup": player,
        "universal_player_id": f"{player}_001",
        "game_id": f"{day:%Y%m%d}_{opp}_DEN",
        "game_date": day,
        "team_abbr": "DEN",
        "opponent_team_abbr": opp,
        "days_rest": 2,
        "back_to_back": False,
        "games_in_last_7_days": 3,
        "minutes_in_last_7_days": 175,
        "avg_minutes_per_game_last_7": 29.2,
        "back_to_backs_last_14_days": 0,
        "player_age": 28,
        "projected_usage_rate": 25.0,
        "avg_usage_rate_last_7_games": 25.0,
        "star_teammates_out": 0,
        "pace_differential": 0.0,
    }
    row.update(context)
    return row


def psza_row(player, day, zone="paint", rate=65.0, games=10):
    """Return one shot-zone profile row with `rate` percent of shots in the primary zone."""
    return {
        "player_lookup": player,
        "analysis_date": day,
        "primary_scoring_zone": zone,
        "paint_rate_last_10": rate if zone == "paint" else 20.0,
        "mid_range_rate_last_10": rate if zone == "mid_range" else 20.0,
        "three_pt_rate_last_10": rate if zone not in ("paint", "mid_range") else 20.0,
        "games_in_sample": games,
    }


def tdza_row(team, day, paint=0.0, mid=0.0, three=0.0):
    """Return one team-defense row (positive means weaker than the league average)."""
    return {
        "team_abbr": team,
        "analysis_date": day,
        "paint_defense_vs_league_avg": paint,
        "mid_range_defense_vs_league_avg": mid,
        "three_pt_defense_vs_league_avg": three,
        "games_in_sample": 10,
    }


def staged(wh, tables) -> pd.DataFrame:
    """Return the staged rows indexed by player."""
    df = wh.query(f"SELECT * FROM {tables.id(PCF_STAGING).sql} ORDER BY player_lookup")
    return df.set_index("player_lookup")


# -- worked examples -----------------------------------------------------------------------------
@pytest.fixture
def upcg_case(empty_wh, local_params):
    """Build one date from UPCG with the fact sheet's worked-example players."""
    t = local_params.tables
    load(
        empty_wh,
        t.upcg,
        [
            upcg_row("fresh", D, pace_differential=3.5, projected_usage_rate=26.0),
            upcg_row("vs_strong_d", D, opp="BOS"),
            upcg_row("spike0", D, projected_usage_rate=30.0),
            upcg_row("spike1", D, projected_usage_rate=30.0, star_teammates_out=1),
            upcg_row("spike2", D, projected_usage_rate=30.0, star_teammates_out=2),
            upcg_row(
                "tired",
                D,
                back_to_back=True,
                games_in_last_7_days=4,
                minutes_in_last_7_days=250,
                avg_minutes_per_game_last_7=36.0,
                back_to_backs_last_14_days=2,
                player_age=36,
            ),
            upcg_row("no_profile", D, pace_differential=None, projected_usage_rate=None),
        ],
    )
    load(
        empty_wh,
        t.psza,
        [psza_row(p, D) for p in ("fresh", "vs_strong_d", "spike0", "spike1", "spike2", "tired")],
    )
    load(empty_wh, t.tdza, [tdza_row("CLE", D, paint=4.3), tdza_row("BOS", D, paint=-3.8)])
    built = build_staging(empty_wh, t, RUN, [D], [])
    return built, staged(empty_wh, t)


def test_fresh_player_gets_fatigue_100_and_no_fatigue_adjustment(upcg_case):
    _, rows = upcg_case
    assert rows.loc["fresh", "fatigue_score"] == 100


def test_pace_differential_3_5_gives_pace_score_1_75(upcg_case):
    _, rows = upcg_case
    assert float(rows.loc["fresh", "pace_score"]) == pytest.approx(1.75)


def test_usage_26_against_baseline_25_gives_0_3(upcg_case):
    _, rows = upcg_case
    assert float(rows.loc["fresh", "usage_spike_score"]) == pytest.approx(0.3)


def test_usage_spike_of_5_is_boosted_by_stars_out(upcg_case):
    _, rows = upcg_case
    got = [float(rows.loc[p, "usage_spike_score"]) for p in ("spike0", "spike1", "spike2")]
    assert got == pytest.approx([1.5, 1.725, 1.95])


def test_paint_scorer_against_weak_paint_defense_gets_4_3(upcg_case):
    _, rows = upcg_case
    assert float(rows.loc["fresh", "shot_zone_mismatch_score"]) == pytest.approx(4.3)


def test_strong_paint_defense_gives_minus_3_8(upcg_case):
    _, rows = upcg_case
    assert float(rows.loc["vs_strong_d", "shot_zone_mismatch_score"]) == pytest.approx(-3.8)


def test_total_is_the_sum_of_adjustments_rounded_to_2_decimals(upcg_case):
    _, rows = upcg_case
    assert float(rows.loc["fresh", "total_composite_adjustment"]) == pytest.approx(6.35)
    deferred = rows[
        [
            "referee_favorability_score",
            "look_ahead_pressure_score",
            "travel_impact_score",
            "opponent_strength_score",
        ]
    ].astype(float)
    assert (deferred == 0).all().all()


def test_every_fatigue_penalty_applies_and_extreme_fatigue_warns(upcg_case):
    _, rows = upcg_case
    assert rows.loc["tired", "fatigue_score"] == 100 - 15 - 10 - 10 - 8 - 12 - 10
    assert "EXTREME_FATIGUE" in rows.loc["tired", "warning_details"]
    assert bool(rows.loc["tired", "has_warnings"])


def test_missing_inputs_lower_completeness_and_are_listed(upcg_case):
    _, rows = upcg_case
    assert float(rows.loc["fresh", "data_completeness_pct"]) == 100
    assert pd.isna(rows.loc["fresh", "missing_data_fields"])
    row = rows.loc["no_profile"]
    assert float(row["data_completeness_pct"]) == 40
    assert row["missing_data_fields"] == ("projected_usage_rate,pace_differential,player_shot_zone")
    assert float(row["shot_zone_mismatch_score"]) == 0


def test_one_statement_builds_every_player_with_version_and_source(upcg_case):
    built, rows = upcg_case
    assert built == len(rows) == 7
    assert set(rows["calculation_version"]) == {"v1_4factors"}
    assert set(rows["context_source"]) == {"UPCG"}
    assert set(rows["run_id"]) == {RUN}
    assert (rows["analysis_date"] == rows["game_date"]).all()


def test_large_mismatch_is_boosted_then_clamped_to_10(empty_wh, local_params):
    t = local_params.tables
    load(empty_wh, t.upcg, [upcg_row("mid", D, opp="LAL"), upcg_row("paint", D, opp="MIA")])
    load(
        empty_wh,
        t.psza,
        [psza_row("mid", D, zone="mid_range", rate=60.0), psza_row("paint", D, rate=50.0)],
    )
    load(empty_wh, t.tdza, [tdza_row("LAL", D, mid=6.0), tdza_row("MIA", D, paint=9.0)])
    build_staging(empty_wh, t, RUN, [D], [])
    rows = staged(empty_wh, t)
    assert float(rows.loc["mid", "shot_zone_mismatch_score"]) == pytest.approx(7.2)
    assert float(rows.loc["paint", "shot_zone_mismatch_score"]) == 10
    assert "EXTREME_MATCHUP" in rows.loc["paint", "warning_details"]


# -- the synthetic context from PGS --------------------------------------------------------------
def test_fallback_builds_context_from_the_previous_days_of_pgs(empty_wh, local_params):
    t = local_params.tables
    history = [
        pgs_row("busy", D - dt.timedelta(days=k), minutes=40.0, usage=20.0) for k in (1, 2, 3, 4)
    ]
    # A game 7 days back is outside HEAD's strict 7-day window.
    history.append(pgs_row("busy", D - dt.timedelta(days=7), minutes=40.0, usage=99.0))
    today = [pgs_row("busy", D), pgs_row("rookie", D)]
    load(empty_wh, t.pgs, history + today)
    built = build_staging(empty_wh, t, RUN, [], [D])
    rows = staged(empty_wh, t)
    assert built == 2
    assert set(rows["context_source"]) == {"PGS_FALLBACK"}
    # busy: back-to-back -15, 4 games -10, 160 min (no penalty), 40 mpg -8.
    assert rows.loc["busy", "fatigue_score"] == 100 - 15 - 10 - 8
    # Default projected usage 25 against the PGS baseline 20: +5 x 0.3.
    assert float(rows.loc["busy", "usage_spike_score"]) == pytest.approx(1.5)
    assert rows.loc["rookie", "fatigue_score"] == 100
    assert float(rows.loc["rookie", "usage_spike_score"]) == 0
    # Only days_rest of the five completeness checks is known in the synthetic context.
    assert float(rows.loc["rookie", "data_completeness_pct"]) == 20
    assert float(rows.loc["rookie", "pace_score"]) == 0


def test_duplicate_upcg_rows_stage_one_row_per_player(empty_wh, local_params):
    t = local_params.tables
    load(empty_wh, t.upcg, [upcg_row("dup", D), upcg_row("dup", D), upcg_row("other", D)])
    assert build_staging(empty_wh, t, RUN, [D], []) == 2


def test_a_date_cannot_be_both_upcg_and_fallback(empty_wh, local_params):
    with pytest.raises(ValueError):
        build_staging(empty_wh, local_params.tables, RUN, [D], [D])
