"""Each phase's checks: named conditions with their evidence, decided here, not in a notebook.

A notebook computes nothing: it passes what a step returned to one of these functions and
records every `Check` it gets back (`for check in ...: phase.check(*check)`). Each function
returns a list, so a step may bring any number of checks, and each is tested on its own
(tests/test_phase_checks.py), not only through a whole run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pandas as pd


class Check(NamedTuple):
    """One named check of a phase: whether it holds, and the evidence shown beside it."""

    name: str
    ok: bool
    evidence: Any = ""


def _all(frame: pd.DataFrame, column: str) -> bool:
    """Return whether every row of a boolean column holds (an empty table holds vacuously)."""
    return bool(frame[column].all())


def _count(frame: pd.DataFrame, column: str) -> str:
    return f"{int(frame[column].sum())}/{len(frame)}"


# -- 00 pre-flight ----------------------------------------------------------------------------
def tree_checks(state, must_be_clean: bool) -> list[Check]:
    """Check the working tree is clean when it must be (phase 00)."""
    return [
        Check(
            f"working tree clean (required: {must_be_clean})",
            state.clean or not must_be_clean,
            f"branch {state.branch}, head {state.head[:10]}, {len(state.dirty)} uncommitted file(s)",
        )
    ]


def promotion_checks(gate: dict) -> list[Check]:
    """Return the promotion gate as phase 00 shows it: passed, skipped with a reason, or none.

    The runner refused a shut gate before the run started, so a run's gate is open here; one
    a run recorded as refused (never written today) or unreadable fails.
    """
    ok = gate.get("state") in ("passed", "skipped", "not gated", "standalone")
    return [Check("promotion gate", ok, gate.get("detail", ""))]


def window_checks(window: dict) -> list[Check]:
    """Return the deployment window's check: open, or closed with the next time and no override."""
    from runbook_lib.run.deploy_window import detail

    return [
        Check(
            "deployment window",
            window["open"] or bool(window.get("override_reason")),
            detail(window),
        )
    ]


def permission_checks(permissions: pd.DataFrame) -> list[Check]:
    """Check no permission the run needs is missing; name those missing and those not known."""
    missing = permissions[permissions["granted"].eq(False)]
    unknown = permissions[permissions["granted"].isna()]
    evidence = (
        "missing: " + ", ".join(f"{r.permission} on {r.resource}" for r in missing.itertuples())
        if len(missing)
        else f"{len(permissions) - len(unknown)} granted"
    )
    if len(unknown):
        evidence += f"; {len(unknown)} {unknown['note'].iloc[0]}"
    return [Check("every permission the run needs is granted", missing.empty, evidence)]


def access_checks(access: pd.DataFrame) -> list[Check]:
    """Check every dataset answered, every table exists and the orchestration dataset takes writes."""
    return [
        Check(
            "datasets reachable, tables present, orchestration writable",
            _all(access, "ok"),
            f"{_count(access, 'ok')} ok",
        )
    ]


def schema_checks(differences: pd.DataFrame, env: str) -> list[Check]:
    """Check no declared table differs from the live one in a way that breaks the run
    (`schema_check.as_frame`); a blocking difference fails 00, before any write."""
    blocking = (
        differences[differences["blocking"].astype(bool)] if len(differences) else differences
    )
    named = "; ".join(f"{r.table}.{r.column}: {r.what}" for r in blocking.itertuples())
    evidence = (
        f"{len(differences)} difference(s), none blocking"
        if blocking.empty
        else f"{named} (to fix this, `runbook schema plan --env {env}`, then `runbook schema "
        f"apply --env {env} --confirm '...'`; a type or mode is migrated by hand)"
    )
    return [Check("declared tables fit the live ones (columns, types, modes)", blocking.empty,
                  evidence)]  # fmt: skip


def signoff_checks(signoffs, signed: list[dict]) -> list[Check]:
    """Check every sign-off item carries a name and a time (phases 00 and 06)."""
    return [
        Check(
            "every sign-off recorded with name and time",
            not signoffs.missing,
            f"{len(signed)} items signed",
        )
    ]


# -- 01 code deployment -----------------------------------------------------------------------
def merge_checks(merge: dict) -> list[Check]:
    """Check the requested fast-forward happened, or that none was requested (phase 01)."""
    name = "merge " + ("fast-forwarded" if merge["requested"] else "not requested")
    return [Check(name, merge["ok"], merge["detail"])]


def pytest_checks(tests: dict) -> list[Check]:
    """Check the safeguard tests ran, at least one of them, and all passed."""
    return [
        Check(
            "safeguard tests pass",
            tests["exit_code"] == 0 and tests["passed"] > 0,
            tests["summary"],
        )
    ]


def safeguard_checks(present: pd.DataFrame) -> list[Check]:
    """Check every safeguard probe found its safeguard working in the imported code."""
    return [
        Check(
            "every safeguard present",
            _all(present, "present"),
            f"{_count(present, 'present')} present",
        )
    ]


def compile_checks(compiled: int) -> list[Check]:
    """Check the package byte-compiled, and that it held at least one module."""
    return [Check("every module byte-compiles", compiled > 0, f"{compiled} files")]


# -- 02 data cleanup --------------------------------------------------------------------------
def cleanup_checks(plan, result, after) -> list[Check]:
    """Check a cleanup against its plan and the plan taken after it (phase 02).

    A dry run must have changed nothing; a real one deleted exactly the previewed rows, each
    table with stale rows has a verified backup, and nothing stale is left.
    """
    if result.dry_run:
        return [
            Check(
                "dry run changed nothing",
                after.total_stale == plan.total_stale,
                f"{after.total_stale:,} stale rows before and after; would delete {plan.total_stale:,}",
            )
        ]
    stale_tables = [t for t in result.tables if t.previewed]
    return [
        Check(
            "rows deleted equal rows previewed",
            result.total_deleted == plan.total_stale,
            f"{result.total_deleted:,} deleted of {plan.total_stale:,} previewed",
        ),
        Check(
            "every table with stale rows has a verified backup",
            all(t.backup_table and t.backup_rows is not None for t in stale_tables),
            ", ".join(result.backups) or "no stale rows, so no backup needed",
        ),
        Check(
            "verification: nothing older than the cutoff remains, newer rows intact",
            all(t.verified for t in stale_tables),
            result.status,
        ),
        Check(
            "no stale rows remain (the seed's Step 2.4 query)",
            after.total_stale == 0,
            f"{after.total_stale:,} stale rows now",
        ),
    ]


# -- 04 integration test ----------------------------------------------------------------------
_COVERAGE_COLUMNS = ["game_date", "expected", "actual", "coverage_pct"]


def full_coverage_checks(name: str, outcomes: pd.DataFrame) -> list[Check]:
    """Check a backfill's outcome table (`BackfillResult.to_frame()`) is 100% on every date."""
    return [
        Check(
            name,
            bool((outcomes["coverage_pct"] == 100).all()),
            outcomes[_COVERAGE_COLUMNS].to_dict("records"),
        )
    ]


def incident_planted_checks(replayed: bool, planted: dict) -> list[Check]:
    """Check UPCG holds the incident's stale row counts again (`incident.incident_state`)."""
    return [
        Check(
            "UPCG holds the incident's stale rows again",
            replayed,
            {str(d): f"{len(p)} planted" for d, p in planted.items()},
        )
    ]


def preflight_stop_checks(stop) -> list[Check]:
    """Check the pre-flight stopped the incident's replay (`backfill_steps.expect_preflight_stop`)."""
    return [Check("pre-flight stops the incident replay before any work", stop is not None, stop)]


def incident_removed_checks(planted: dict, removed: dict) -> list[Check]:
    """Check exactly the planted rows were removed, date by date, and nothing else."""
    return [
        Check(
            "planted rows removed, exactly those planted",
            removed == {d: len(p) for d, p in planted.items()},
            {str(d): n for d, n in removed.items()},
        )
    ]


def coverage_checks(coverage: pd.DataFrame, dates: int) -> list[Check]:
    """Check the seed's coverage query answers for each of `dates` dates, each at 100%."""
    return [
        Check(
            "100% coverage on every date",
            len(coverage) == dates and bool((coverage["coverage_pct"] == 100).all()),
            coverage.to_dict("records"),
        )
    ]


def log_line_checks(expected: pd.DataFrame) -> list[Check]:
    """Check every line the runbook tells operators to look for appeared (`backfill_steps.expected_lines`)."""
    return [
        Check(
            "every expected log line appeared", _all(expected, "found"), _count(expected, "found")
        )
    ]


# -- 05 monitoring ----------------------------------------------------------------------------
def dashboard_checks(board: pd.DataFrame, days: int) -> list[Check]:
    """Check the dashboard view returned the window's game dates; with none, say why."""
    evidence = f"{len(board)} game dates in the last {days} days"
    if board.empty:
        evidence = (
            f"no game date in the last {days} days has data or metadata yet: no backfill "
            "has run since the deployment (the nightly schedule fills it)"
        )
    return [Check("dashboard view returns rows", len(board) > 0, evidence)]


NOT_CONFIGURED = "NOT CONFIGURED"


def alert_checks(test_status, received, channel_label: str, no_channel: bool) -> list[Check]:
    """Check the test notification arrived; with an explicit "no channel", say NOT CONFIGURED.

    `test_status` is the HTTP status of the test notification (None when no webhook is set),
    `received` what the channel counted (None for a remote webhook, whose inbox is unread).
    """
    if no_channel:
        return [
            Check(
                "alert channel delivers (test notification)",
                True,
                f"{NOT_CONFIGURED}: alerts.no_channel is set, alerts are only logged",
            )
        ]
    return [
        Check(
            "alert channel delivers (test notification)",
            test_status is not None and 200 <= test_status < 300 and received != 0,
            f"HTTP {test_status}, {received} message(s) received by {channel_label}",
        )
    ]


def monitor_checks(result, views) -> list[Check]:
    """Check the views exist and the monitor ran over the window; list what it found."""
    return [
        Check("dashboard and alert views created", len(views) == 2, list(views["view"])),
        Check(
            "monitor checked the window's game dates",
            result.game_dates > 0,
            f"{result.headline()}; "
            + ("; ".join(p.summary for p in result.problems) or "no problem"),
        ),
    ]


def monitor_function_checks(served: dict) -> list[Check]:
    """Check the monitor's Cloud Function ran here (local) from the bundle: HTTP 200 and a
    summary it logged; elsewhere say where it runs instead."""
    if not served["served"]:
        return [Check("monitor function", True, f"not served here: {served['note']}")]
    summary = served["summary"]
    return [
        Check(
            "monitor function served by functions-framework answers a scheduled event",
            served["http_status"] == 200 and summary.get("status") in ("healthy", "alerting"),
            f"HTTP {served['http_status']}; {summary.get('headline', 'no summary logged')}",
        )
    ]


def demo_checks(demo) -> list[Check]:
    """Check the three planted problems were alerted, three messages arrived, and exactly they
    were removed (each table's digest as before, the monitor back to what it found before)."""
    if not demo.ran:
        return [Check("monitor catches planted problems", True, f"not run: {demo.why_not}")]
    keys = demo.planted.keys
    return [
        Check(
            "monitor alerts each planted problem",
            set(keys) <= set(demo.found),
            [k for k in keys if k not in demo.found] or keys,
        ),
        Check(
            "the receiver got one message per planted problem",
            demo.received == len(keys),
            f"{demo.received} message(s) for {len(keys)} planted problems",
        ),
        Check(
            "exactly what was planted is removed",
            bool(demo.removed["same rows"].all()) and demo.after == demo.before,
            f"{int(demo.removed['same rows'].sum())}/{len(demo.removed)} tables as before; "
            f"monitor after: {demo.after or 'no problem'}",
        ),
    ]


# -- 06 post-deployment -----------------------------------------------------------------------
def post_deployment_window_checks(windows: pd.DataFrame) -> list[Check]:
    """Check no 1 h / 24 h / first-week check FAILED (PENDING is not a failure: it waits)."""
    from runbook_lib.run.post_deployment import FAIL

    failed = windows["status"] == FAIL
    return [
        Check(
            "no post-deployment check failed",
            not failed.any(),
            windows.loc[failed, "check"].tolist(),
        )
    ]


def success_criteria_checks(criteria: pd.DataFrame) -> list[Check]:
    """Check no success criterion failed, counting them rather than assuming seven.

    A criterion still waiting for evidence from after the deployment is not a failure: the run
    is DEPLOYED until `runbook followup` finds it met (VERIFIED) or not.
    """
    waiting = criteria.get("waiting", criteria["met"].astype(bool) & False)
    failed = ~criteria["met"].astype(bool) & ~waiting.astype(bool)
    evidence = f"{_count(criteria, 'met')} met"
    if waiting.any():
        evidence += f", {int(waiting.sum())} waiting for evidence after the deployment"
    return [
        Check(
            f"no success criterion of {_spelled(len(criteria))} failed", not failed.any(), evidence
        )
    ]


def _spelled(n: int) -> str:
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if n < len(words) else str(n)


# -- 90 rollback ------------------------------------------------------------------------------
def backups_found_checks(to_restore: list) -> list[Check]:
    """Say which backups the rollback restores; none means no cleanup of the run deleted a row.

    (A cleanup deletes only after its verified backup is recorded, in its journal first.)
    """
    if not to_restore:
        return [
            Check(
                "no data to restore: no attempt of phase 02 made a backup, so none deleted "
                "a row (a dry run, nothing stale, or no 02 in the run)",
                True,
                [],
            )
        ]
    return [Check("backups to restore found", True, [str(b.backup) for b in to_restore])]


def restore_checks(restored: list, restored_table: pd.DataFrame) -> list[Check]:
    """Check something was restored and every restore left no deleted row missing."""
    columns = ["table", "how", "rows", "deleted", "missing_after"]
    if not restored:  # nothing to restore (backups_found_checks said why): no restore to verify
        return []
    return [
        Check(
            "every restore verified (no deleted row still missing)",
            _all(restored_table, "verified"),
            restored_table[columns].to_dict("records"),
        )
    ]


def function_rollback_checks(function_rollback: dict) -> list[Check]:
    """Check the daily function was stopped or paused (`rollback_phase.rollback_function`)."""
    return [
        Check("function stopped or paused", function_rollback["ok"], function_rollback["detail"])
    ]
