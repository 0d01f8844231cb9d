"""Benchmark: the set-based PCF backfill of four seasons against the original's per-date loop.

Seeds the synthetic league into a temporary folder (in a child process, so the peak RSS printed
is the backfill's), runs `run_backfill` over every date of the four seasons with every safeguard
on (pre-flight, defensive checks, fallback, staging, validation, MERGE, metadata, checkpoint),
then runs the original's per-date shape over a sample of dates and extrapolates: per date a PGS
count query, a UPCG count query, a context query, the UTCG, shot-zone and defense queries, a Python loop over
players computing the factors, a load and MERGE of that date, a validation query and a
checkpoint write.

    .venv/bin/python bench/bench_backfill.py [--sample 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runbook_lib.platform.backfill import run_backfill  # noqa: E402
from runbook_lib.platform.backfill_chunk import merge_sql  # noqa: E402
from runbook_lib.platform.checkpoint import Checkpoint  # noqa: E402
from runbook_lib.platform.schema import PCF_STAGING  # noqa: E402
from runbook_lib.run.params import load_params  # noqa: E402
from runbook_lib.warehouse import connect  # noqa: E402

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


def _fatigue(r) -> int:
    # Synthetic context: days_rest is 0 or 1, so only the back-to-back branch can apply.
    s = 100 - (15 if r.back_to_back else 0)
    s -= 10 if r.games7 >= 4 else 0
    s -= 10 if r.minutes7 > 240 else 0
    s -= 8 if r.mpg7 > 35 else 0
    return max(0, min(100, s))


def per_date_loop(wh, t, day: dt.date, checkpoint) -> int:
    """Process one date the way the original did: queries per date, a Python loop per player."""
    q = wh.query
    pgs = int(
        q(
            f"SELECT COUNT(DISTINCT player_lookup) n FROM {t.pgs.sql} WHERE game_date = @d",
            {"d": day},
        )["n"].iloc[0]
    )
    q(f"SELECT COUNT(DISTINCT player_lookup) n FROM {t.upcg.sql} WHERE game_date = @d", {"d": day})
    ctx = q(
        f"""SELECT t.player_lookup, t.game_id, t.opponent_team_abbr,
          COALESCE(COUNTIF(h.game_date = DATE_SUB(@d, INTERVAL 1 DAY)) > 0, FALSE) AS back_to_back,
          COUNTIF(h.game_date > DATE_SUB(@d, INTERVAL 7 DAY)) AS games7,
          COALESCE(SUM(IF(h.game_date > DATE_SUB(@d, INTERVAL 7 DAY), h.minutes_played, 0)), 0)
            AS minutes7,
          COALESCE(AVG(IF(h.game_date > DATE_SUB(@d, INTERVAL 7 DAY), h.minutes_played, NULL)), 0)
            AS mpg7
        FROM {t.pgs.sql} t LEFT JOIN {t.pgs.sql} h ON h.player_lookup = t.player_lookup
          AND h.game_date >= DATE_SUB(@d, INTERVAL 14 DAY) AND h.game_date < @d
        WHERE t.game_date = @d GROUP BY 1, 2, 3""",
        {"d": day},
    )
    q(
        f"SELECT team_abbr, game_id, game_date, game_total, game_spread FROM {t.utcg.sql} "
        f"WHERE game_date = @d",
        {"d": day},
    )
    zones = q(f"SELECT * FROM {t.psza.sql} WHERE analysis_date = @d", {"d": day})
    defense = q(f"SELECT * FROM {t.tdza.sql} WHERE analysis_date = @d", {"d": day})
    zone_by_player = {r.player_lookup: r for r in zones.itertuples()}
    defense_by_team = {r.team_abbr: r for r in defense.itertuples()}
    rows = []
    for r in ctx.itertuples():  # the original's per-player processing
        fatigue = _fatigue(r)
        z, d = zone_by_player.get(r.player_lookup), defense_by_team.get(r.opponent_team_abbr)
        shot = float(d.paint_defense_vs_league_avg) if (z is not None and d is not None) else 0.0
        rows.append(
            {
                "player_lookup": r.player_lookup,
                "game_date": day,
                "game_id": r.game_id,
                "fatigue_score": fatigue,
                "shot_zone_mismatch_score": shot,
                "run_id": "loop",
            }
        )
    if rows:  # the original MERGEd each date into PCF on its own
        wh.load_dataframe(t.id(PCF_STAGING), pd.DataFrame(rows))
        wh.execute(merge_sql(t), {"run_id": "loop", "dates": [day]})
    published = int(
        q(
            f"SELECT COUNT(DISTINCT player_lookup) n FROM {t.pcf.sql} WHERE game_date = @d",
            {"d": day},
        )["n"].iloc[0]
    )
    if pgs and published >= 0.9 * pgs:  # the validation verdict, then one checkpoint write
        checkpoint.record(successes={day: published})
    return published


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=40, help="dates timed for the per-date loop")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=_seed, args=(tmp,))
        child.start()
        child.join()
        print(f"seed (child process): {time.perf_counter() - t0:.2f} s")
        params = _params(Path(tmp))
        wh, t = connect(params), params.tables
        span = wh.query(
            f"SELECT MIN(game_date) a, MAX(game_date) b FROM {t.schedule.sql} "
            f"WHERE game_date <= @today",
            {"today": params.effective_today()},
        )
        start, end = span["a"].iloc[0], span["b"].iloc[0]
        t0 = time.perf_counter()
        result = run_backfill(
            wh, params, start, end, allow_partial_context=True, workers=args.workers
        )
        set_based = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        dates = [o.game_date for o in result.published]
        players = sum(o.actual for o in result.published)
        print(
            f"set-based backfill {start} .. {end}: {len(result.outcomes)} dates "
            f"({len(dates)} published, {len(result.skipped)} skipped, "
            f"{len(result.failed)} failed), {players:,} players, "
            f"{len(result.preflight_issues)} partial-UPCG dates handled by the fallback"
        )
        print(
            f"  wall {set_based:.2f} s (workers {args.workers or params.backfill.workers}); "
            f"peak RSS {rss_mb:.0f} MB"
        )
        step = max(1, len(dates) // args.sample)
        sample = dates[::step][: args.sample]
        checkpoint = Checkpoint(Path(tmp) / "loop.json", start, end)
        t0 = time.perf_counter()
        with wh.session():
            for day in sample:
                per_date_loop(wh, t, day, checkpoint)
        loop = time.perf_counter() - t0
        extrapolated = loop / len(sample) * len(dates)
        print(
            f"per-date loop: {len(sample)} sampled dates in {loop:.2f} s "
            f"({loop / len(sample) * 1000:.0f} ms/date) -> {extrapolated:.1f} s for "
            f"{len(dates)} dates (extrapolated)"
        )
        print(f"speedup: {extrapolated / set_based:.0f}x")


if __name__ == "__main__":
    main()
