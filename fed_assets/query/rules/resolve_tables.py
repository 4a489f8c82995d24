"""Resolve ``silo.table`` / ``silo.schema.table`` names to silos and load their schemas."""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from fed_assets.errors import UnknownSiloError
from fed_assets.query.context import PlanContext
from fed_assets.query.tree import cte_names


def resolve_tables(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Rewrite every table reference to ``"<silo>"."<table lower>"`` and record its schema.

    Column identifiers are folded to lower case (the planner's namespace); fragment SQL maps
    them back to each silo's spelling.

    Raises:
        UnknownSiloError: a table names no configured silo, or names none at all.
        UnknownTableError: the silo has no such table.
    """
    ctes = cte_names(expression)
    by_lower = {name.lower(): name for name in context.silos}
    for table in list(expression.find_all(exp.Table)):
        parts = [p.name for p in table.parts]
        if len(parts) == 1 and parts[0].lower() in ctes:
            continue
        if not table.name or isinstance(table.this, exp.Func):
            continue  # table functions are evaluated in the embedded engine
        if len(parts) < 2:
            raise UnknownSiloError(
                f"table '{parts[0]}'",
                "it names no silo",
                f"write it as <silo>.{parts[0]}; configured silos: {', '.join(context.silos)}",
            )
        silo_name = by_lower.get(parts[0].lower())
        if silo_name is None:
            raise UnknownSiloError(
                f"silo '{parts[0]}' (in {'.'.join(parts)})",
                "no silo of that name is configured",
                f"use one of: {', '.join(context.silos) or '(none configured)'}",
            )
        silo = context.silos[silo_name]
        actual = silo.require_table(".".join(parts[1:]))
        key = actual.lower()
        if (silo_name, key) not in context.spelling:
            schema = context.schema_source(silo, actual)
            context.arrow[(silo_name, key)] = schema
            context.spelling[(silo_name, key)] = (actual, {n.lower(): n for n in schema.names})
            context.schema.setdefault(silo_name, {})[key] = {
                n.lower(): sql_type(f.type) for n, f in zip(schema.names, schema, strict=True)
            }
        alias = table.args.get("alias")
        replacement = exp.Table(
            this=exp.to_identifier(key, quoted=True), db=exp.to_identifier(silo_name, quoted=True)
        )
        replacement.set("alias", alias or exp.TableAlias(this=exp.to_identifier(parts[-1].lower())))
        table.replace(replacement)
    for column in expression.find_all(exp.Column):
        ident = column.this
        if isinstance(ident, exp.Identifier):
            column.set("this", exp.to_identifier(ident.name.lower(), quoted=True))
    return expression


def sql_type(dtype: pa.DataType) -> str:
    """A SQL type sqlglot understands for an Arrow type (for type annotation only)."""
    if pa.types.is_boolean(dtype):
        return "BOOLEAN"
    if pa.types.is_integer(dtype):
        return "BIGINT"
    if pa.types.is_floating(dtype):
        return "DOUBLE"
    if pa.types.is_decimal(dtype):
        return f"DECIMAL({dtype.precision}, {dtype.scale})"
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMPTZ" if dtype.tz else "TIMESTAMP"
    if pa.types.is_date(dtype):
        return "DATE"
    if pa.types.is_time(dtype):
        return "TIME"
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return "BLOB"
    return "TEXT"
