"""Qualify every column with its table and expand stars, against the silos' schemas."""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from fed_assets.errors import QuerySyntaxError, UnknownColumnError
from fed_assets.query.context import PlanContext

_UNRESOLVED = re.compile(r"Column '([^']+)' could not be resolved(?: for table: '([^']+)')?")
_UNKNOWN = re.compile(r"Unknown column: (\S+)")


class AmbiguousColumnError(QuerySyntaxError):
    """A column name that more than one table of the query has."""


def qualify_columns(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """sqlglot's ``qualify`` with its errors turned into ``FedAssetsError``s naming the column."""
    schema = MappingSchema(context.schema, dialect="duckdb", normalize=False)
    try:
        qualified = qualify(
            expression,
            schema=schema,
            dialect="duckdb",
            quote_identifiers=True,
            identify=True,
            validate_qualify_columns=True,
        )
    except OptimizeError as err:
        raise translate(err, context, expression) from None
    names = [n.lower() for n in qualified.named_selects]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise QuerySyntaxError(
            "query",
            f"duplicate output column '{duplicates[0]}': a result cannot hold two columns of one name",
            f"give each an alias, e.g. ... AS {duplicates[0]}_2",
        )
    return qualified


def translate(
    err: OptimizeError, context: PlanContext, expression: exp.Expression | None = None
) -> Exception:
    text = str(err)
    match = _UNRESOLVED.search(text) or _UNKNOWN.search(text)
    if not match:
        return QuerySyntaxError("query", text.rstrip("."), "correct the SQL")
    column = match.group(1).strip('"')
    table = match.group(2) if match.re is _UNRESOLVED else None
    owners = _sources_with(column, context, expression)
    if len(owners) > 1 and table is None:
        return AmbiguousColumnError(
            f"column '{column}'",
            f"it is ambiguous: {', '.join(owners)} all have it",
            f"qualify it with its table alias, e.g. {owners[0].split(' ')[0]}.{column}",
        )
    read = [f"{s}.{context.spelling[(s, t)][0]}" for s, ts in context.schema.items() for t in ts]
    where = f"column '{column}'" + (f" of table alias '{table}'" if table else "")
    return UnknownColumnError(
        where,
        "no table in the query has such a column" if not table else "that table has no such column",
        f"check the spelling; the query reads {', '.join(read)}",
    )


def _sources_with(
    column: str, context: PlanContext, expression: exp.Expression | None
) -> list[str]:
    """The query's table sources that have ``column``: ``alias (silo.table)`` for each, so a
    table joined to itself counts twice; without the query, the silo tables that have it."""
    if expression is None:
        return [
            f"{silo}.{context.spelling[(silo, t)][0]}"
            for silo, tables in context.schema.items()
            for t, columns in tables.items()
            if column.lower() in columns
        ]
    owners = []
    for node in expression.find_all(exp.Table):
        silo, name = node.db, node.name.lower()
        columns = context.schema.get(silo, {}).get(name)
        if columns is not None and column.lower() in {c.lower() for c in columns}:
            owners.append(f"{node.alias_or_name} ({silo}.{context.spelling[(silo, name)][0]})")
    return owners
