"""Dagster metadata as the UI shows it best: formatted SQL and tables, never raw JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import sqlglot

# Dagster's table column types, by the Python type of a cell (anything else is shown as text).
_COLUMN_TYPES = ((bool, "bool"), (int, "int"), (float, "float"))


def pretty_sql(sql: str, dialect: str = "duckdb") -> str:
    """``sql`` laid out one clause a line by sqlglot's pretty printer (as written if it does not
    parse in ``dialect``)."""
    try:
        return ";\n".join(sqlglot.transpile(sql, read=dialect, write=dialect, pretty=True))
    except sqlglot.errors.SqlglotError:
        return sql


def sql_markdown(
    sql: str, dialect: str = "duckdb", *, title: str | None = None
) -> dg.MetadataValue:
    """``sql`` formatted, as a Markdown code block (under a bold ``title`` when given)."""
    block = f"```sql\n{pretty_sql(sql, dialect)}\n```"
    return dg.MetadataValue.md(f"**{title}**\n\n{block}" if title else block)


def table(rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None):
    """A ``dg.MetadataValue.table`` of ``rows`` (dicts with the same keys); column types come
    from the first row's values. ``None`` cells are left empty."""
    names = list(columns or (rows[0] if rows else []))
    first = rows[0] if rows else {}
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name=n, type=_column_type(first.get(n))) for n in names]
    )
    records = [
        dg.TableRecord(data={n: row.get(n) for n in names if row.get(n) is not None})
        for row in rows
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def _column_type(value: Any) -> str:
    for python_type, name in _COLUMN_TYPES:
        if isinstance(value, python_type):
            return name
    return "string"
