"""Identifiers: the only way a project, dataset or table name reaches SQL.

Names come from the params model and are checked with `re.fullmatch` against exact classes
(bigquery-etl's own regex lets ``p`.d.t; DELETE ...`` through; ours does not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runbook_lib.errors import InvalidIdentifierError

# BigQuery project ids: 6-30 chars, lowercase letters, digits and hyphens, starting with a letter.
PROJECT_RE = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
# Dataset and table names: letters, digits, underscores; tables may not start with a digit here.
NAME_RE = r"[A-Za-z_][A-Za-z0-9_]{0,1023}"


def check_project(value: str) -> str:
    """Return `value` if it is a plain project id, else raise InvalidIdentifierError."""
    if not isinstance(value, str) or not re.fullmatch(PROJECT_RE, value):
        raise InvalidIdentifierError("project", str(value), PROJECT_RE)
    return value


def check_name(value: str, kind: str = "table") -> str:
    """Return `value` if it is a plain dataset or table name, else raise InvalidIdentifierError."""
    if not isinstance(value, str) or not re.fullmatch(NAME_RE, value):
        raise InvalidIdentifierError(kind, str(value), NAME_RE)
    return value


@dataclass(frozen=True, order=True)
class TableId:
    """A validated `project.dataset.table`."""

    project: str
    dataset: str
    table: str

    def __post_init__(self):
        check_project(self.project)
        check_name(self.dataset, "dataset")
        check_name(self.table, "table")

    @property
    def sql(self) -> str:
        """Return the BigQuery Standard SQL reference, backquoted."""
        return f"`{self.project}.{self.dataset}.{self.table}`"

    @property
    def short(self) -> str:
        """Return `dataset.table`, the way people name tables in this project."""
        return f"{self.dataset}.{self.table}"

    def with_table(self, table: str) -> TableId:
        """Return the id of another table in the same dataset."""
        return TableId(self.project, self.dataset, table)

    def __str__(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"
