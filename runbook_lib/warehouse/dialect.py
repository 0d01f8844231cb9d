"""Translate BigQuery Standard SQL to DuckDB with sqlglot, fixing where raw output drifts.

Measured drift of sqlglot 30 (bigquery -> duckdb), each fixed below and proven by the
contract tests that run the same SQL on both backends:
- `DATE_SUB`/`DATE_ADD`/`DATE_TRUNC` on a DATE return a TIMESTAMP in DuckDB: cast back to DATE.
- `EXTRACT(DAYOFWEEK ...)` is 1 (Sunday) .. 7 in BigQuery but 0 .. 6 in DuckDB: add one.
- `NUMERIC` becomes DuckDB's DECIMAL(18,3): use BigQuery's precision, DECIMAL(38,9).
- Integer `/` is float division in both, but sqlglot renders BigQuery `DIV` as `//`; kept.
- `COUNTIF` becomes DuckDB's `COUNT_IF`, which is NULL over no rows where BigQuery's is 0:
  use `COUNT(*) FILTER (WHERE ...)`, which is 0.
- `FARM_FINGERPRINT` has no DuckDB twin (sqlglot keeps the name, which DuckDB lacks): DuckDB's
  `hash()`, a UBIGINT, shifted into the signed INT64 range, stands in. The values differ from
  BigQuery's, so a fingerprint is only ever compared with one from the same warehouse.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from functools import lru_cache
from pathlib import Path

import sqlglot
from sqlglot import exp

NUMERIC = exp.DataType.build("DECIMAL(38, 9)", dialect="duckdb")
DATE = exp.DataType.build("DATE")
# hash() is unsigned 64-bit; minus 2**63 maps it one-to-one onto BIGINT, like BigQuery's INT64.
_FINGERPRINT = "CAST(CAST(HASH(_arg) AS HUGEINT) - 9223372036854775808 AS BIGINT)"


_FINGERPRINT_TREE = sqlglot.parse_one(_FINGERPRINT, read="duckdb")


def _fingerprint(node: exp.FarmFingerprint) -> exp.Expression:
    tree = _FINGERPRINT_TREE.copy()  # parsed once: a copy costs a tenth of a parse
    arg = node.expressions[0] if node.expressions else node.this
    return tree.transform(
        lambda n: arg.copy() if isinstance(n, exp.Column) and n.name == "_arg" else n
    )


def _fix(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.CountIf):
        return exp.Filter(
            this=exp.Count(this=exp.Star()), expression=exp.Where(this=node.this.copy())
        )
    if isinstance(node, exp.FarmFingerprint):
        return _fingerprint(node)
    if isinstance(node, (exp.DateSub, exp.DateAdd, exp.DateTrunc)) and not isinstance(
        node.parent, exp.Cast
    ):
        return exp.Cast(this=node.copy(), to=DATE.copy())
    if isinstance(node, exp.Extract) and node.name.upper() == "DAYOFWEEK":
        return exp.Paren(this=exp.Add(this=node.copy(), expression=exp.Literal.number(1)))
    if (
        isinstance(node, exp.DataType)
        and node.this
        in (
            exp.DataType.Type.DECIMAL,
            exp.DataType.Type.BIGDECIMAL,
        )
        and not node.expressions
    ):
        return NUMERIC.copy()
    return node


# Translations kept across processes: every phase's kernel, each worker of the safeguard tests
# and the probes are processes of their own, and each translated the same statements again
# (the factors INSERT, 10 KB of SQL, takes 60 ms). A translation depends on the SQL, sqlglot's
# version and this module's code, nothing else: the last two name the folder, the SQL its file.
CACHE_ROOT = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "backfill-runbook"
    / "duckdb-sql"
)
_VERSION = hashlib.sha256(sqlglot.__version__.encode() + b"\0" + Path(__file__).read_bytes())
# More files than this in the folder (statements naming dated backups add a few a run): emptied.
MAX_KEPT = 5000


@lru_cache(maxsize=512)
def to_duckdb(sql: str) -> list[str]:
    """Return DuckDB statements equivalent to one or more BigQuery statements.

    A translation made before by this code and this sqlglot, in any process, is read back
    from CACHE_ROOT instead of made again (a file that does not hold this SQL's is ignored).
    """
    folder = CACHE_ROOT / _VERSION.hexdigest()[:16]
    entry = folder / f"{hashlib.sha256(sql.encode()).hexdigest()}.json"
    kept = _kept(entry, sql)
    if kept is not None:
        return kept
    out = _translate(sql)
    _keep(entry, sql, out)
    return out


def _kept(entry: Path, sql: str) -> list[str] | None:
    """Return the statements `entry` holds for `sql`, None when it holds none (or another's)."""
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    statements = data.get("duckdb") if isinstance(data, dict) and data.get("sql") == sql else None
    if not isinstance(statements, list) or not all(isinstance(s, str) for s in statements):
        return None
    return statements


_checked: set[Path] = set()  # folders this process has checked for their size


def _keep(entry: Path, sql: str, statements: list[str]) -> None:
    """Write the translation to `entry` whole (a reader sees the old file or the new one);
    a cache that cannot be written is no error."""
    folder = entry.parent
    try:
        if folder not in _checked:
            _checked.add(folder)
            if folder.is_dir() and sum(1 for _ in folder.iterdir()) > MAX_KEPT:
                shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{entry.name}.{os.getpid()}.{threading.get_ident()}"
        partial.write_text(json.dumps({"sql": sql, "duckdb": statements}), encoding="utf-8")
        os.replace(partial, entry)
    except OSError:
        pass


def _translate(sql: str) -> list[str]:
    out = []
    for tree in sqlglot.parse(sql, read="bigquery"):
        if tree is None:
            continue
        # The tree is this call's own: fixed and generated in place, without the two deep
        # copies sqlglot makes by default (a third of the translation's time, measured).
        tree = tree.transform(_fix, copy=False)
        out.append(tree.sql(dialect="duckdb", copy=False))
    return out


def bigquery_type(duckdb_type_name: str) -> str:
    """Return the BigQuery type a DuckDB column type stands for (the inverse of duckdb_type)."""
    name = duckdb_type_name.upper()
    if name.startswith("DECIMAL"):
        return "NUMERIC"
    named = {"VARCHAR": "STRING", "BIGINT": "INT64", "INTEGER": "INT64", "DOUBLE": "FLOAT64",
             "BOOLEAN": "BOOL", "DATE": "DATE", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP"}  # fmt: skip
    return named.get(name, name)


def duckdb_type(bq_type: str) -> str:
    """Return the DuckDB column type for a declared BigQuery type."""
    return {
        "STRING": "VARCHAR",
        "INT64": "BIGINT",
        "NUMERIC": "DECIMAL(38, 9)",
        "FLOAT64": "DOUBLE",
        "BOOL": "BOOLEAN",
        "DATE": "DATE",
        "TIMESTAMP": "TIMESTAMPTZ",
    }[bq_type]
