"""The types of a declared table: its columns (`Field`) and layout (`TableSchema`).

The backends create tables from them; the platform declares its tables with them
(platform/schema.py). Partitioning and clustering are declared for BigQuery; the DuckDB backend
ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runbook_lib.warehouse.ids import check_name

TYPES = {"STRING", "INT64", "NUMERIC", "FLOAT64", "BOOL", "DATE", "TIMESTAMP"}


@dataclass(frozen=True)
class Field:
    """One column: name, BigQuery type, mode."""

    name: str
    type: str
    mode: str = "NULLABLE"

    def __post_init__(self):
        check_name(self.name, "column")
        if self.type not in TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.type}")


@dataclass(frozen=True)
class TableSchema:
    """A table's declared layout: dataset key, name, fields, partitioning, clustering."""

    dataset_key: str
    name: str
    fields: tuple[Field, ...]
    partition_by: str | None = None
    cluster_by: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    # The columns that identify a row (no uniqueness is enforced): what a plan's digest hashes,
    # and what a rollback matches the live table's rows against its backup's by.
    key: tuple[str, ...] = field(default_factory=tuple)

    @property
    def columns(self) -> list[str]:
        """Return the column names in order."""
        return [f.name for f in self.fields]


def fields_of(spec: str) -> tuple[Field, ...]:
    """Parse 'name TYPE [REQUIRED], ...' lines into Fields."""
    out = []
    for part in spec.replace("\n", ",").split(","):
        words = part.split()
        if words:
            out.append(Field(words[0], words[1], "REQUIRED" if len(words) > 2 else "NULLABLE"))
    return tuple(out)
