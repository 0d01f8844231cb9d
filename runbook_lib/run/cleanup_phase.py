"""Phase 02's steps around the cleanup: apply a confirmed plan, and what it records.

Its checks are in phase_checks.py, with every other phase's.

Each function here would otherwise be logic in a notebook cell; keeping it here keeps
notebook 02 thin and the behaviour tested.
"""

from __future__ import annotations


def apply_cleanup(phase, plan, tokens: list[str], dry_run: bool):
    """Apply a confirmed plan in phase 02: backups named by run and attempt, steps journaled."""
    from runbook_lib.platform import cleanup

    # One connection for the audit intent, backups, deletes and audit row (one DuckDB instance).
    with phase.wh.session():
        return cleanup.apply_cleanup(
            phase.wh,
            phase.tables,
            plan,
            confirm=tokens,
            dry_run=dry_run,
            run_id=phase.backup_suffix,
            trigger="runbook",
            journal=phase.journal,
        )


def cleanup_records(result) -> dict:
    """Return what phase 02 records: per-table outcome, total deleted, and the backups made."""
    import pandas as pd

    return {
        "tables": pd.DataFrame(
            [
                {
                    "table": t.table.short,
                    "previewed": t.previewed,
                    "deleted": t.deleted,
                    "backup": str(t.backup_table or ""),
                    "backup_rows": t.backup_rows,
                    "verified": t.verified,
                }
                for t in result.tables
            ]
        ),
        "rows_deleted": result.total_deleted,
        "backups": [
            {
                "table": str(t.table),
                "backup": str(t.backup_table),
                "backup_rows": t.backup_rows,
                "deleted": t.deleted,
                "cutoff": result.plan.cutoff.isoformat(),
            }
            for t in result.tables
            if t.backup_table
        ],
    }


def confirmed_tokens(plan, confirmation, dry_run: bool, is_local: bool) -> list[str]:
    """Return the tokens phase 02 applies its plan with: none on a dry run, else the resolved ones."""
    from runbook_lib.platform.cleanup_confirm import resolve_confirmation

    if dry_run:
        return []
    return resolve_confirmation(plan, confirmation.value, confirmation.source, is_local)


def confirmation_summary(confirmed: dict) -> str:
    """Return the line phase 02 prints of a `confirmation_record`: how, and what was given."""
    return f"confirmation ({confirmed['how']}): {confirmed['given'] or '-'}"


def confirmation_record(
    plan, given, tokens: list[str], dry_run: bool, source: str = "", phase=None
) -> dict:
    """Return what the archive keeps of a confirmation: expected, given, where, how, who, when.

    `given` is the form's Confirmation (who answered it, when and how) or the parameter's text.
    """
    from runbook_lib.clock import now_iso
    from runbook_lib.platform.cleanup_confirm import AUTO, confirmation_line, join_tokens
    from runbook_lib.run.interact import Confirmation, who

    holder = given if isinstance(given, Confirmation) else None
    text = holder.value if holder else (given or "")
    how = (
        "dry run: no confirmation needed"
        if dry_run
        else (
            "auto (local: the previewed plan accepted)"
            if text.strip() == AUTO
            else (holder.how if holder and holder.how else f"typed ({source or 'given'})")
        )
    )
    return {
        "expected": confirmation_line(plan),
        "given": join_tokens(tokens),
        "how": how,
        "source": source,
        "by": (holder.by if holder else None) or f"{who(phase)} ({source or 'parameter'})",
        "at": (holder.at if holder else None) or now_iso(),
    }
