"""Benchmark: the set-based PCF backfill of four seasons against the original's per-date loop.

Seeds the synthetic league once (in a child process, so the peak RSS printed is the backfill's),
then each run gets a fresh copy of it (PCF empty) and translates its SQL afresh:
- `run_backfill` over every date of the four seasons with every safeguard on (pre-flight,
  defensive checks, fallback, staging, validation, MERGE, metadata, checkpoint), once per
  `--workers` value;
- the original's per-date shape (fact sheet 2.3-2.7) over a sample of the published dates,
  extrapolated to all of them: per date the pre-flight's PGS and UPCG count queries, the UPCG
  context query, the processor's PGS expected-count query, the synthetic context query when it
  falls back, the UTCG, shot-zone and defense queries, a Python loop over players computing the
  four factors, a load and MERGE of that date, the validation's count query and a checkpoint
  write.

    .venv/bin/python bench/bench_backfill.py [--sample 40] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runbook_lib.platform.backfill_chunk import merge_sql  # noqa: E402
from runbook_lib.platform.checkpoint import Checkpoint  # noqa: E402
from runbook_lib.platform.schema import PCF_STAGING  # noqa: E402
from runbook_lib.run.backfill_steps import run_backfill  # noqa: E402
from runbook_lib.run.params import load_params  # noqa: E402
from runbook_lib.warehouse import connect  # noqa: E402
from runbook_lib.warehouse.dialect import to_duckdb  # noqa: E402

TODAY = "2025-04-10"


def _params(folder: Path):
    return load_params(
        "local",
        {
            "warehouse_dir": str(folder / "wh"),
            "today": TODAY,
            "backfill.checkpoint_dir": str(folder / "cp"),
        },
    )


def _seed(folder: str) -> None:
    from runbook_lib.platform.league import seed_league

    params = _params(Path(folder))
    seed_league(connect(params), params.tables, params.effective_today())


_UPCG_COLUMNS = (
    "player_lookup, universal_player_id, game_id, game_date, opponent_team_abbr, days_rest, "
    "back_to_back, games_in_last_7_days, minutes_in_last_7_days, avg_minutes_per_game_last_7, "
    "back_to_backs_last_14_days, player_age, projected_usage_rate, avg_usage_rate_last_7_games, "
    "star_teammates_out, pace_differential, opponent_pace_last_10"
)


def _num(value, default):
    return default if value is None or pd.isna(value) else float(value)


def _fatigue(c: dict) -> int:
    s = 100.0
    if c.get("back_to_back"):
        s -= 15
    elif _num(c.get("days_rest"), 1) >= 3:
        s += 5
    s -= 10 if _num(c.get("games_in_last_7_days"), 3) >= 4 else 0
    s -= 10 if _num(c.get("minutes_in_last_7_days"), 200) > 240 else 0
    s -= 8 if _num(c.get("avg_minutes_per_game_last_7"), 30) > 35 else 0
    b2b = _num(c.get("back_to_backs_last_14_days"), 0)
    s -= 12 if b2b >= 2 else 5 if b2b == 1 else 0
    age = _num(c.get("player_age"), 25)
    s -= 10 if age >= 35 else 5 if age >= 30 else 0
    return int(max(0, min(100, s)))


def _shot_zone(zone, defense) -> float:
    if zone is None or defense is None:
        return 0.0
    name = {"paint": "paint", "mid_range": "mid_range"}.get(zone.primary_scoring_zone, "three_pt")
    rating = _num(getattr(defense, f"{name}_defense_vs_league_avg"), 0)
    base = rating * min(_num(getattr(zone, f"{name}_rate_last_10"), 50) / 50, 1)
    base = base * 1.2 if abs(base) > 5 else base
    return max(-10.0, min(10.0, base))


def _usage(c: dict) -> float:
    baseline = _num(c.get("avg_usage_rate_last_7_games"), 25)
    if baseline == 0:
        return 0.0
    spike = (_num(c.get("projected_usage_rate"), 25) - baseline) * 0.3
    stars = _num(c.get("star_teammates_out"), 0)
    if spike > 0 and stars >= 2:
        spike *= 1.30
    elif spike > 0 and stars == 1:
        spike *= 1.15
    return max(-3.0, min(3.0, spike))


def player_factors(c: dict, zone, defense) -> dict:
    """Compute one player's v1_4factors row in Python, as the original's processor did."""
    fatigue, shot = _fatigue(c), _shot_zone(zone, defense)
    pace = max(-3.0, min(3.0, _num(c.get("pace_differential"), 0) / 2))
    usage = _usage(c)
    total = round((fatigue - 100) / 20 + shot + pace + usage, 2)
    known = [c.get("days_rest") is not None, c.get("projected_usage_rate") is not None]
    known += [c.get("pace_differential") is not None, zone is not None, defense is not None]
    return {
        "player_lookup": c["player_lookup"],
        "universal_player_id": c["universal_player_id"],
        "game_date": c["game_date"],
        "game_id": c["game_id"],
        "analysis_date": c["game_date"],
        "fatigue_score": fatigue,
        "shot_zone_mismatch_score": shot,
        "pace_score": pace,
        "usage_spike_score": usage,
        "total_composite_adjustment": total,
        "calculation_version": "v1_4factors",
        "data_completeness_pct": 20.0 * sum(known),
        "has_warnings": fatigue < 50 or abs(shot) > 8 or abs(total) > 12,
        "context_source": c["context_source"],
        "run_id": "loop",
    }


def _count(wh, table, day: dt.date) -> int:
    sql = f"SELECT COUNT(DISTINCT player_lookup) n FROM {table.sql} WHERE game_date = @d"
    return int(wh.query(sql, {"d": day})["n"].iloc[0])


def _synthetic_context(wh, t, day: dt.date) -> pd.DataFrame:
    """The fallback context of one date: each PGS player's previous 14 days (fact sheet 2.4)."""
    return wh.query(
        f"""SELECT t.player_lookup, t.universal_player_id, t.game_id, t.game_date,
          t.opponent_team_abbr,
          COALESCE(COUNTIF(h.game_date = DATE_SUB(@d, INTERVAL 1 DAY)) > 0, FALSE) AS back_to_back,
          COUNTIF(h.game_date > DATE_SUB(@d, INTERVAL 7 DAY)) AS games_in_last_7_days,
          CAST(FLOOR(COALESCE(SUM(IF(h.game_date > DATE_SUB(@d, INTERVAL 7 DAY),
            h.minutes_played, 0)), 0)) AS INT64) AS minutes_in_last_7_days,
          COALESCE(AVG(IF(h.game_date > DATE_SUB(@d, INTERVAL 7 DAY), h.minutes_played, NULL)),
            0) AS avg_minutes_per_game_last_7,
          AVG(IF(h.game_date > DATE_SUB(@d, INTERVAL 7 DAY), h.usage_rate, NULL))
            AS avg_usage_rate_last_7_games
        FROM {t.pgs.sql} t LEFT JOIN {t.pgs.sql} h ON h.player_lookup = t.player_lookup
          AND h.game_date >= DATE_SUB(@d, INTERVAL 14 DAY) AND h.game_date < @d
        WHERE t.game_date = @d GROUP BY 1, 2, 3, 4, 5""",
        {"d": day},
    )


def _context(wh, t, day: dt.date) -> list[dict]:
    """Read UPCG, count PGS, and fall back to the synthetic context when UPCG is short."""
    upcg = wh.query(f"SELECT {_UPCG_COLUMNS} FROM {t.upcg.sql} WHERE game_date = @d", {"d": day})
    expected = _count(wh, t.pgs, day)  # the processor's own PGS count (backfill mode)
    if len(upcg) == 0 or (expected > 0 and len(upcg) < 0.9 * expected):
        rows = _synthetic_context(wh, t, day).to_dict("records")
        for r in rows:
            r.update(days_rest=0 if r["back_to_back"] else 1, context_source="PGS_FALLBACK")
        return rows
    return [{**r, "context_source": "UPCG"} for r in upcg.to_dict("records")]


def per_date_loop(wh, t, day: dt.date, checkpoint) -> int:
    """Process one date the way the original did: queries per date, a Python loop per player."""
    _count(wh, t.pgs, day)  # the pre-flight: PGS, then UPCG, one query each per date
    _count(wh, t.upcg, day)
    context = _context(wh, t, day)
    wh.query(
        f"SELECT team_abbr, game_id, game_date, game_total, game_spread FROM {t.utcg.sql} "
        f"WHERE game_date = @d",
        {"d": day},
    )
    zones = wh.query(f"SELECT * FROM {t.psza.sql} WHERE analysis_date = @d", {"d": day})
    defense = wh.query(f"SELECT * FROM {t.tdza.sql} WHERE analysis_date = @d", {"d": day})
    zone_by_player = {r.player_lookup: r for r in zones.itertuples()}
    defense_by_team = {r.team_abbr: r for r in defense.itertuples()}
    rows = [  # the original's per-player processing
        player_factors(
            c, zone_by_player.get(c["player_lookup"]), defense_by_team.get(c["opponent_team_abbr"])
        )
        for c in context
    ]
    if rows:  # the original MERGEd each date into PCF on its own
        wh.load_dataframe(t.id(PCF_STAGING), pd.DataFrame(rows))
        wh.execute(merge_sql(t), {"run_id": "loop", "dates": [day]})
    expected = _count(wh, t.pgs, day)  # the validation's expected count (fact sheet 2.5)
    if expected == 0 or len(rows) >= 0.9 * expected:  # then one checkpoint write per date
        checkpoint.record(successes={day: len(rows)})
    else:
        checkpoint.record(failures={day: f"Coverage validation failed ({len(rows)} players)"})
    return len(rows)


def _copy(tmp: Path, name: str):
    """Return params and warehouse of a fresh copy of the seeded league (PCF still empty)."""
    shutil.copytree(tmp / "seed" / "wh", tmp / name / "wh")
    params = _params(tmp / name)
    # Each run translates its SQL afresh, as the first run of a new process does.
    to_duckdb.cache_clear()
    return params, connect(params)


def time_set_based(tmp: Path, workers: int):
    """Run the whole four-season backfill on a fresh copy; return (result, seconds, span)."""
    params, wh = _copy(tmp, f"set_based_{workers}")
    t = params.tables
    span = wh.query(
        f"SELECT MIN(game_date) a, MAX(game_date) b FROM {t.schedule.sql} "
        f"WHERE game_date <= @today",
        {"today": params.effective_today()},
    )
    start, end = span["a"].iloc[0], span["b"].iloc[0]
    t0 = time.perf_counter()
    result = run_backfill(wh, params, start, end, allow_partial_context=True, workers=workers)
    return result, time.perf_counter() - t0


def time_loop(tmp: Path, result, sample_size: int) -> tuple[int, float]:
    """Run the per-date loop over evenly spaced published dates; return (dates, seconds)."""
    params, wh = _copy(tmp, "loop")
    dates = [o.game_date for o in result.published]
    sample = dates[:: max(1, len(dates) // sample_size)][:sample_size]
    checkpoint = Checkpoint(tmp / "loop.json", result.start, result.end)
    t0 = time.perf_counter()
    with wh.session():
        for day in sample:
            per_date_loop(wh, params.tables, day, checkpoint)
    return len(sample), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=40, help="dates timed for the per-date loop")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        t0 = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=_seed, args=(tmp / "seed",))
        child.start()
        child.join()
        print(f"seed (child process): {time.perf_counter() - t0:.2f} s")
        walls = {}
        for workers in args.workers:
            result, walls[workers] = time_set_based(tmp, workers)
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"set-based backfill {result.start} .. {result.end}, workers {workers}: "
                f"{walls[workers]:.2f} s; {len(result.outcomes)} dates "
                f"({len(result.published)} published, {len(result.skipped)} skipped, "
                f"{len(result.failed)} failed), {sum(o.actual for o in result.published):,} "
                f"players, {len(result.preflight_issues)} partial-UPCG dates handled by the "
                f"fallback; peak RSS so far {rss_mb:.0f} MB"
            )
        published = len(result.published)
        sampled, loop = time_loop(tmp, result, args.sample)
        extrapolated = loop / sampled * published
        print(
            f"per-date loop: {sampled} sampled dates in {loop:.2f} s "
            f"({loop / sampled * 1000:.0f} ms/date) -> {extrapolated:.1f} s for "
            f"{published} dates (extrapolated)"
        )
        for workers, wall in walls.items():
            print(f"speedup, workers {workers}: {extrapolated / wall:.0f}x")


if __name__ == "__main__":
    main()
