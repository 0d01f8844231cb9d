"""Type BigQuery statements with sqlglot's BigQuery dialect, as BigQuery would before running them.

DuckDB and the BigQuery emulator both let through forms that BigQuery rejects, above all an
implicit FLOAT64 -> NUMERIC (BigQuery coerces INT64 to NUMERIC and NUMERIC to FLOAT64, never
FLOAT64 to NUMERIC). `problems` parses one statement, resolves every column against the
declared schemas (platform/schema.py), types every expression (sqlglot's annotate_types, with
each @parameter typed as the BigQuery backend sends it: `warehouse.base.parameter_types`), and reports each value written
into a column whose type BigQuery would not coerce it to: INSERT ... SELECT/VALUES, UPDATE ... SET
and MERGE's WHEN clauses.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from runbook_lib import paths
from runbook_lib.platform import schema as declared
from runbook_lib.warehouse.schema import TableSchema

# BigQuery's implicit coercions of a value written into a column (the "Coercion" column of
# https://cloud.google.com/bigquery/docs/reference/standard-sql/conversion_rules), by type name.
COERCES_TO = {
    "INT64": {"INT64", "NUMERIC", "BIGNUMERIC", "FLOAT64"},
    "NUMERIC": {"NUMERIC", "BIGNUMERIC", "FLOAT64"},
    "BIGNUMERIC": {"BIGNUMERIC", "FLOAT64"},
    "FLOAT64": {"FLOAT64"},
    "DATE": {"DATE", "DATETIME"},
}
# What sqlglot cannot type (NULL, a bare parameter it was not told about) is not judged.
UNJUDGED = {"NULL", "UNKNOWN", ""}


def bq_type(dtype: exp.DataType | None) -> str:
    """Return the BigQuery type name of a sqlglot type ("" when there is none)."""
    if dtype is None:
        return ""
    return dtype.sql(dialect="bigquery").split("(")[0].upper()


def schema_mapping(tables, schemas) -> dict:
    """Return {project: {dataset: {table: {column: type}}}} of the declared schemas."""
    mapping: dict = {}
    for schema in schemas:
        tid = tables.id(schema)
        columns = {f.name: f.type for f in schema.fields}
        mapping.setdefault(tid.project, {}).setdefault(tid.dataset, {})[tid.table] = columns
    return mapping


def declared_schemas() -> list[TableSchema]:
    """Return every table platform/schema.py declares (the platform's, the runbook's own)."""
    return [v for v in vars(declared).values() if isinstance(v, TableSchema)]


def _typed_parameters(tree: exp.Expression, sent: dict[str, str]) -> exp.Expression:
    """Stand each @parameter in as a NULL of the type the BigQuery backend sends it as."""

    def typed(node: exp.Expression) -> exp.Expression:
        name = node.name if isinstance(node, exp.Parameter) else None
        if name in sent:
            stand_in = exp.cast(exp.null(), exp.DataType.build(sent[name], dialect="bigquery"))
            stand_in.meta["parameter"] = name
            return stand_in
        return node

    return tree.transform(typed)


def _target_columns(tree: exp.Expression, mapping: dict) -> dict[str, str]:
    table = tree.this if not isinstance(tree.this, exp.Schema) else tree.this.this
    if not isinstance(table, exp.Table):
        return {}
    found = mapping.get(table.catalog, {}).get(table.db, {}).get(table.name)
    return dict(found or {})


def _written(tree: exp.Expression, mapping: dict) -> list[tuple[str, exp.Expression]]:
    """Return (column, value) for every value the statement writes into a column."""
    out: list[tuple[str, exp.Expression]] = []
    if isinstance(tree, exp.Insert):
        names = [c.name for c in tree.this.expressions] if isinstance(tree.this, exp.Schema) else []
        source = tree.expression
        if isinstance(source, exp.Values):
            for row in source.expressions:
                out.extend(zip(names, row.expressions, strict=False))
        elif isinstance(source, exp.Query):
            out.extend(zip(names, source.selects, strict=False))
    elif isinstance(tree, exp.Update):
        out.extend((eq.this.name, eq.expression) for eq in tree.expressions)
    elif isinstance(tree, exp.Merge):
        for when in tree.find_all(exp.When):
            action = when.args.get("then")
            if isinstance(action, exp.Update):
                out.extend((eq.this.name, eq.expression) for eq in action.expressions)
            elif isinstance(action, exp.Insert):
                names = [c.name for c in action.this.expressions] if action.this else []
                values = action.expression.expressions if action.expression else []
                out.extend(zip(names, values, strict=False))
    return out


def problems(sql: str, param_types: dict[str, str], mapping: dict) -> list[str]:
    """Return what BigQuery would reject in one statement's typing (empty when none)."""
    try:
        trees = sqlglot.parse(sql, read="bigquery")
    except ParseError as e:
        return [f"not BigQuery SQL: {e}"]
    found = []
    for tree in filter(None, trees):
        try:
            tree = qualify(tree, schema=mapping, dialect="bigquery", validate_qualify_columns=True)
        except OptimizeError as e:
            found.append(f"a column is not in the declared schemas: {e}")
            continue
        tree = _typed_parameters(tree, param_types)
        tree = annotate_types(tree, schema=mapping, dialect="bigquery")
        target = _target_columns(tree, mapping)
        for column, value in _written(tree, mapping):
            want, got = target.get(column, ""), bq_type(value.type)
            if want and got not in UNJUDGED and want not in COERCES_TO.get(got, {got}):
                found.append(
                    f"{got} written into {want} column {column} without a CAST: {_shown(value)}"
                )
    return found


def _shown(value: exp.Expression) -> str:
    """Return a value's SQL as written, its parameters shown as @name again."""

    def back(node: exp.Expression) -> exp.Expression:
        name = node.meta.get("parameter")
        return exp.Parameter(this=exp.var(name)) if name else node

    return value.transform(back).sql(dialect="bigquery")[:80]


def untyped_statements(sent: list[dict], tables) -> dict[str, list[str]]:
    """Return {statement: problems} for each traced statement BigQuery would not type."""
    mapping = schema_mapping(tables, declared_schemas())
    seen, out = set(), {}
    for item in sent:
        key = (item["sql"], tuple(sorted(item["params"].items())))
        if key in seen:
            continue
        seen.add(key)
        found = problems(_declared(item["sql"]), item["params"], mapping)
        if found:
            out[f"{item['sender']}: {item['sql'].strip()[:200]}"] = found
    return out


# A backup or a staging copy of a declared table has the table's schema: type it as that table.
_COPY = re.compile(r"`([^`]+)_(?:backup|before_restore)_[0-9A-Za-z_]+`")


def _declared(sql: str) -> str:
    return _COPY.sub(lambda m: f"`{m.group(1)}`", sql)


_SQL = re.compile(
    r"\b(SELECT|INSERT INTO|MERGE|UPDATE|DELETE FROM|CREATE (?:OR REPLACE )?(?:TABLE|VIEW))\b"
)


def untraced_sql_modules(sent: list[dict]) -> list[str]:
    """Return the modules that build SQL (outside warehouse/) none of whose statements was traced.

    A module's SQL counts as traced when the module sent a statement, or when a module that did
    imports it (league_sql's statements are sent by league).
    """
    senders = {item["sender"] for item in sent}
    sources = {m: _source(m).read_text() for m in senders if _source(m).exists()}
    out = []
    for path in sorted((paths.SOURCE_ROOT / "runbook_lib").rglob("*.py")):
        module = ".".join(path.relative_to(paths.SOURCE_ROOT).with_suffix("").parts)
        if module.startswith("runbook_lib.warehouse.") or not _SQL.search(path.read_text()):
            continue
        parent, _, name = module.rpartition(".")
        imported = re.compile(
            rf"from {re.escape(parent)} import (?:\([^)]*|[^\n]*)\b{name}\b|import {module}\b"
        )
        if module not in senders and not any(imported.search(t) for t in sources.values()):
            out.append(module)
    return out


def _source(module: str):
    return paths.SOURCE_ROOT.joinpath(*module.split(".")).with_suffix(".py")
