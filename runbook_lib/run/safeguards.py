"""Phase 01's proof that the code which will run carries each safeguard.

The seed runbook grepped for `_validate_coverage`; text proves nothing about behaviour. Each
probe here imports the deployed module and exercises the safeguard on a tiny in-memory case
(the incident's 1-of-187 where it fits), so a safeguard that is present but broken fails too.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path

import pandas as pd

from runbook_lib.errors import ConfirmationRequired, PreflightFailedError, SafeguardMissingError
from runbook_lib.log_capture import capture_logs
from runbook_lib.run.checks import scratch_dir

DAY = dt.date(2023, 2, 23)


class _Broken(Exception):
    """A probe's finding: the safeguard answered wrongly; the message is the evidence.

    Raised explicitly, never by `assert`: under `python -O` asserts vanish, and a broken
    safeguard would then be reported present.
    """


def _require(holds: bool, evidence: str) -> None:
    """Raise _Broken with `evidence` unless the safeguard's answer `holds`."""
    if not holds:
        raise _Broken(evidence)


def _logged(func, *args, **kwargs) -> tuple[object, list[str]]:
    # Capture the probe's log lines instead of letting them reach the phase's output.
    with capture_logs("runbook", level=logging.DEBUG, silence=True) as lines:
        return func(*args, **kwargs), lines


def _preflight() -> str:
    from runbook_lib.platform import coverage

    counts = pd.DataFrame([{"game_date": DAY, "pgs_players": 187, "upcg_players": 1}])
    try:
        _logged(coverage.preflight, counts, 0.9, allow_partial=False)
    except PreflightFailedError as e:
        return f"1/187 UPCG stops the run: {str(e)[:60]}..."
    raise _Broken("pre-flight let 1/187 UPCG through")


def _defensive_logging() -> str:
    from runbook_lib.platform import coverage

    _, lines = _logged(coverage.decide, DAY, 1, 187, 0.9)
    wanted = [
        "Data source check",
        "(UPCG): 1 players",
        "(PGS): 187 players",
        "INCOMPLETE DATA DETECTED",
    ]
    missing = [w for w in wanted if not any(w in line for line in lines)]
    _require(not missing, f"log lines missing: {missing}")
    return f"{len(lines)} lines logged for 1/187"


def _fallback() -> str:
    from runbook_lib.platform import coverage

    partial, _ = _logged(coverage.decide, DAY, 1, 187, 0.9)
    empty, _ = _logged(coverage.decide, DAY, 0, 187, 0.9)
    full, _ = _logged(coverage.decide, DAY, 187, 187, 0.9)
    _require(
        partial == empty == coverage.FALLBACK and full == coverage.UPCG,
        f"decisions for 1/187, 0/187, 187/187 UPCG: {partial}, {empty}, {full}",
    )
    return "partial and empty UPCG fall back to PGS; complete UPCG is used"


def _validation() -> str:
    from runbook_lib.platform import coverage

    bands = dict(fail_below=90.0, warn_below=95.0, force=False)
    incident, _ = _logged(coverage.judge, DAY, 187, 1, **bands)
    warn, _ = _logged(coverage.judge, DAY, 200, 190, **bands)
    full, _ = _logged(coverage.judge, DAY, 187, 187, **bands)
    _require(
        not incident.passed and warn.passed and full.passed,
        f"verdicts for 0.5%, 95%, 100%: {incident}, {warn}, {full}",
    )
    return "0.5% fails, 95% warns and passes, 100% passes"


def _checkpoint() -> str:
    from runbook_lib.platform.checkpoint import Checkpoint

    with tempfile.TemporaryDirectory() as folder:
        cp = Checkpoint(Path(folder) / "cp.json", DAY, DAY + dt.timedelta(days=1))
        cp.record(
            successes={DAY + dt.timedelta(days=1): 175},
            failures={DAY: "Coverage validation failed"},
        )
        failed, pending = (
            cp.summary()["failed_dates"],
            cp.pending([DAY, DAY + dt.timedelta(days=1)]),
        )
    _require(failed == {str(DAY): "Coverage validation failed"}, f"failed dates kept: {failed}")
    _require(pending == [DAY], f"dates to retry: {pending}, expected [{DAY}]")
    return "failed date keeps its error and is retried on resume"


def _probe_warehouse(folder: Path):
    """Return (params, warehouse) of a scratch DuckDB under `folder`, not yet created."""
    from runbook_lib.run.params import load_params
    from runbook_lib.warehouse import connect

    params = load_params(
        "local",
        {
            "warehouse_dir": str(folder / "wh"),
            "today": "2023-03-01",
            "backfill.checkpoint_dir": str(folder / "ck"),
        },
    )
    return params, connect(params)


def _seed_probe(wh, t) -> None:
    """Create every table in `wh` and one incident-shaped date: 1/20 UPCG."""
    from runbook_lib.platform.schema import ALL_TABLES

    for schema in ALL_TABLES:
        wh.ensure_table(t.id(schema), schema)
    opener, day = dt.date(2022, 10, 18), DAY
    wh.load_dataframe(
        t.schedule,
        pd.DataFrame(
            {
                "game_id": ["o", "g"],
                "nba_game_id": ["1", "2"],
                "game_date": [opener, day],
                "season_year": 2022,
                "home_team_abbr": "DEN",
                "away_team_abbr": "CLE",
                "game_type": "Regular Season",
            }
        ),
    )
    players = [f"p{i}" for i in range(20)]
    wh.load_dataframe(
        t.pgs,
        pd.DataFrame(
            {
                "player_lookup": players,
                "game_id": "g",
                "game_date": day,
                "team_abbr": "DEN",
                "opponent_team_abbr": "CLE",
                "season_year": 2022,
                "starter_flag": False,
                "win_flag": True,
                "is_active": True,
                "minutes_played": 24.0,
                "usage_rate": 20.0,
            }
        ),
    )
    wh.load_dataframe(
        t.upcg,
        pd.DataFrame(
            {
                "player_lookup": players[:1],
                "game_id": "g",
                "game_date": day,
                "team_abbr": "DEN",
                "opponent_team_abbr": "CLE",
            }
        ),
    )


def _backfill_options() -> str:
    from runbook_lib.run.backfill_steps import run_backfill

    with tempfile.TemporaryDirectory(dir=scratch_dir()) as folder:
        params, wh = _probe_warehouse(Path(folder))
        # One connection for the whole probe: opening and closing the file around each
        # statement was most of its time. The backfill opens its sessions inside this one.
        # The file is thrown away with the folder: no checkpoint at close, one thread.
        with wh.scratch_session():
            _seed_probe(wh, params.tables)
            try:
                _logged(run_backfill, wh, params, dates=[str(DAY)])
                raise _Broken("--dates skipped the pre-flight on 1/20 UPCG")
            except PreflightFailedError:
                pass
            result, _ = _logged(
                run_backfill, wh, params, dates=[str(DAY)], allow_partial_context=True
            )
        outcome = result.outcome(DAY)
        got = (outcome.decision, outcome.actual, outcome.status)
    _require(
        got == ("PGS_FALLBACK", 20, "COMPLETE"), f"--allow-partial-context on 1/20 UPCG: {got}"
    )
    return (
        "--dates stops at the pre-flight on 1/20 UPCG; --allow-partial-context falls back to 20/20"
    )


def _cleanup_confirmation() -> str:
    from runbook_lib.platform import cleanup

    preview = cleanup.TablePreview(_table(), 5, 1, DAY, DAY, 10, plan_id="3f9a2c")
    plan = cleanup.CleanupPlan("local", DAY, 7, DAY, 0.9, (preview,), pd.DataFrame())
    try:
        cleanup.check_confirmation(plan, "yes")
    except ConfirmationRequired:
        cleanup.check_confirmation(plan, plan.token(preview.table))
        return f"'yes' refused; only '{plan.token(preview.table)}' accepted"
    raise _Broken("cleanup accepted 'yes' as a confirmation")


def _table():
    from runbook_lib.warehouse.ids import TableId

    return TableId("nba-props-platform", "nba_analytics", "upcoming_player_game_context")


def _cloud_function() -> str:
    from functions_framework import _function_registry

    from runbook_lib.platform.cloud_function import main

    kind = _function_registry.REGISTRY_MAP.get(main.cleanup_upcoming_tables.__name__)
    _require(
        kind == "cloudevent", f"entry point registered as {kind!r}, deployed with a Pub/Sub trigger"
    )
    return "Pub/Sub CloudEvent entry point, matching its --trigger-topic deployment"


PROBES = {
    "pre-flight coverage check": _preflight,
    "defensive logging": _defensive_logging,
    "fallback to PGS below 90%": _fallback,
    "coverage validation (90% fail / 95% warn)": _validation,
    "checkpoint keeps errors, retries failures": _checkpoint,
    "explicit --allow-partial-context, guarded --dates": _backfill_options,
    "cleanup confirmation bound to the plan": _cleanup_confirmation,
    "cloud function signature matches its trigger": _cloud_function,
}


def exercise(name: str) -> str:
    """Exercise the safeguard `name` in the imported code; return the evidence that it works.

    Raises SafeguardMissingError with the name and the evidence when it does not: a wrong
    answer, or any exception on the way (an import that fails is a missing safeguard too).
    """
    try:
        return PROBES[name]()
    except _Broken as e:
        raise SafeguardMissingError(name, str(e)) from e
    except Exception as e:  # noqa: BLE001 - a missing or broken safeguard is the finding
        raise SafeguardMissingError(name, f"{type(e).__name__}: {e}") from e


def inspect_safeguards() -> pd.DataFrame:
    """Import the code that will run and exercise each safeguard; return one row per safeguard."""
    rows = []
    for name in PROBES:
        try:
            rows.append({"safeguard": name, "present": True, "evidence": exercise(name)})
        except SafeguardMissingError as e:
            rows.append({"safeguard": name, "present": False, "evidence": e.evidence})
    return pd.DataFrame(rows)
