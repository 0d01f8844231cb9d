"""How a phase shows SQL and notes: Markdown objects Jupyter renders and nbconvert keeps."""

from __future__ import annotations


class Sql:
    """A SQL statement shown as-is, the BigQuery Standard SQL production runs."""

    def __init__(self, text: str, title: str = ""):
        self.text, self.title = text.strip(), title

    def _repr_markdown_(self) -> str:
        head = f"**{self.title}**\n\n" if self.title else ""
        return f"{head}```sql\n{self.text}\n```"

    def __repr__(self) -> str:
        return (f"-- {self.title}\n" if self.title else "") + self.text


def sql(text: str, title: str = "") -> Sql:
    """Return `text` as a SQL block for display in a notebook."""
    return Sql(text, title)
