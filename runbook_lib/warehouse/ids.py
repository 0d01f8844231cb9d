"""Identifiers: the only way a project, dataset or table name reaches SQL.

Names come from the params model and are checked with `re.fullmatch` against exact classes
(bigquery-etl's own regex lets ``p`.d.t; DELETE ...`` through; ours does not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runbook_lib.config import NAME_RE, PROJECT_RE
from runbook_lib.errors import EnvironmentMismatchError, InvalidIdentifierError


def check_project(value: str, source: str | None = None) -> str:
    """Return `value` if it is a plain project id, else raise InvalidIdentifierError.

    `source` names where the value came from (a flag such as "--backup") for the error message.
    """
    if not isinstance(value, str) or not re.fullmatch(PROJECT_RE, value):
        raise InvalidIdentifierError("project", str(value), PROJECT_RE, source)
    return value


def check_name(value: str, kind: str = "table", source: str | None = None) -> str:
    """Return `value` if it is a plain dataset or table name, else raise InvalidIdentifierError."""
    if not isinstance(value, str) or not re.fullmatch(NAME_RE, value):
        raise InvalidIdentifierError(kind, str(value), NAME_RE, source)
    return value


def parse_table_id(text: str, project: str, dataset: str, source: str | None = None) -> TableId:
    """Return the TableId named by `table`, `dataset.table` or `project.dataset.table`.

    A missing project or dataset is taken from `project` and `dataset`; a full id naming another
    project than `project` raises EnvironmentMismatchError (a backup of staging is not prod's).
    """
    parts = str(text).split(".")
    if len(parts) > 3:
        raise InvalidIdentifierError(
            "table", str(text), "table, dataset.table or project.dataset.table", source
        )
    table = check_name(parts[-1], "table", source)
    ds = check_name(parts[-2], "dataset", source) if len(parts) > 1 else dataset
    if len(parts) == 3:
        named = check_project(parts[0], source)
        if named != project:
            what = f"{source} project" if source else "project"
            raise EnvironmentMismatchError(project, named, what)
    return TableId(project, ds, table)


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
