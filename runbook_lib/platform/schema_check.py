"""The declared tables against what exists: differences, and a plan that only ever adds.

Production tables that already exist were used as they were: the original
`backfill_processing_metadata` has 8 of the 12 columns the backfill writes, and the original
`cleanup_operations` another schema altogether (original-system.md 3.4, 4.5). `compare` reads each
live table (columns, BigQuery types, modes, partitioning) and lists every difference with whether
it blocks the runbook; `plan_changes` lists what `apply_changes` may do about it: create a
missing table (the PCF staging table included) and add a missing column as NULLABLE. Nothing
ever drops or retypes a column: a type that differs blocks until a person migrates the table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from runbook_lib.errors import ConfirmationRequired
from runbook_lib.platform.schema import ALL_TABLES, Tables
from runbook_lib.warehouse.base import Warehouse, one_connection
from runbook_lib.warehouse.schema import Field, TableSchema


@dataclass(frozen=True)
class Difference:
    """One way a live table differs from its declaration; `blocking` ones refuse a run."""

    table: str
    column: str
    what: str
    declared: str
    live: str
    blocking: bool


@dataclass(frozen=True)
class Change:
    """What `apply_changes` does: create a table, or add one NULLABLE column."""

    table: str
    action: str  # "create table" or "add column"
    detail: str


def _declared_partition(schema: TableSchema) -> str | None:
    text = (schema.partition_by or "").strip()
    return text[5:-1].strip() if text.upper().startswith("DATE(") else (text or None)


def _column_differences(name: str, declared: TableSchema, live: TableSchema) -> list[Difference]:
    out, have = [], {f.name: f for f in live.fields}
    for f in declared.fields:
        got = have.get(f.name)
        if got is None:
            out.append(Difference(name, f.name, "missing column", f"{f.type} {f.mode}", "-", True))
        elif got.type != f.type:
            out.append(Difference(name, f.name, "type", f.type, got.type, True))
        elif got.mode == "REQUIRED" and f.mode != "REQUIRED":
            # The runbook may write NULL there; the other way round is only stricter data.
            out.append(Difference(name, f.name, "mode", f.mode, got.mode, True))
    for extra in (f for f in live.fields if f.name not in {d.name for d in declared.fields}):
        # A REQUIRED column the runbook never fills refuses every row it inserts.
        blocking = extra.mode == "REQUIRED"
        out.append(Difference(name, extra.name, "extra column", "-", f"{extra.type} {extra.mode}",
                              blocking))  # fmt: skip
    return out


@one_connection
def compare(
    wh: Warehouse, tables: Tables, schemas: tuple[TableSchema, ...] = ALL_TABLES
) -> list[Difference]:
    """Return every difference between the declared tables and the live ones."""
    out = []
    for schema in schemas:
        table = tables.id(schema)
        live = wh.live_schema(table)
        if live is None:
            out.append(Difference(table.short, "-", "missing table", "declared", "-", True))
            continue
        out += _column_differences(table.short, schema, live)
        declared_part = _declared_partition(schema)
        if wh.backend == "bigquery" and live.partition_by != declared_part:
            out.append(Difference(table.short, declared_part or "-", "partitioning",
                                  declared_part or "none", live.partition_by or "none", False))  # fmt: skip
    return out


def as_frame(differences: list[Difference]) -> pd.DataFrame:
    """Return the differences as a table (empty with its columns when there are none)."""
    columns = ["table", "column", "what", "declared", "live", "blocking"]
    return pd.DataFrame([d.__dict__ for d in differences], columns=columns)


def plan_changes(differences: list[Difference]) -> list[Change]:
    """Return what apply may do: create missing tables, add missing columns as NULLABLE."""
    changes = []
    for d in differences:
        if d.what == "missing table":
            changes.append(Change(d.table, "create table", "as declared"))
        elif d.what == "missing column":
            changes.append(Change(d.table, "add column", f"{d.column} {d.declared.split()[0]}"))
    return changes


def unfixable(differences: list[Difference]) -> list[Difference]:
    """Return the blocking differences no plan fixes (a type, a mode, a REQUIRED extra column)."""
    return [
        d for d in differences if d.blocking and d.what not in ("missing table", "missing column")
    ]


def confirmation_line(env: str, changes: list[Change]) -> str:
    """Return the line that confirms exactly these changes on this environment."""
    text = "\n".join(f"{env}|{c.table}|{c.action}|{c.detail}" for c in changes)
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"apply {len(changes)} schema changes (plan {digest})"


def apply_changes(
    wh: Warehouse, tables: Tables, env: str, changes: list[Change], confirm: str | None
) -> list[Change]:
    """Apply the planned changes if `confirm` is the plan's line; return what was done."""
    expected = confirmation_line(env, changes)
    if (confirm or "").strip() != expected:
        raise ConfirmationRequired(expected, confirm)
    declared = {tables.id(s).short: s for s in ALL_TABLES}
    for change in changes:
        schema = declared[change.table]
        table = tables.id(schema)
        if change.action == "create table":
            wh.ensure_table(table, schema)
        else:
            name = change.detail.split()[0]
            field = next(f for f in schema.fields if f.name == name)
            wh.add_column(table, Field(field.name, field.type))
    return changes
