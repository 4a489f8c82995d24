"""Refuse cross-silo equi-joins whose keys have incompatible types, before anything moves.

``customers.id`` (an integer in one silo) ``= countries.code`` (text in another) would otherwise
fail deep inside a silo or the embedded engine; the error names both columns and the fix.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.errors import FedAssetsError
from fed_assets.query.context import PlanContext
from fed_assets.query.lineage import base_column
from fed_assets.query.tree import entries, join_conjuncts


class JoinTypeError(FedAssetsError):
    """Join keys from different silos whose types cannot be compared."""


def check_join_types(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Compare the type families of both sides of every equality between two fragments."""
    for select in expression.find_all(exp.Select):
        placeholders = {
            s.alias_or_name: s.name
            for s, _ in entries(select)
            if isinstance(s, exp.Table) and s.name in context.cuts
        }
        conditions = join_conjuncts(select, inner_only=False)
        for cond in conditions:
            if not (
                isinstance(cond, exp.EQ)
                and isinstance(cond.left, exp.Column)
                and isinstance(cond.right, exp.Column)
            ):
                continue
            sides = [_base_type(c, placeholders, context) for c in (cond.left, cond.right)]
            if None in sides:
                continue
            (left_name, left_type), (right_name, right_type) = sides
            if _family(left_type) != _family(right_type):
                raise JoinTypeError(
                    f"join {left_name} = {right_name}",
                    f"the keys have incompatible types ({left_type} vs {right_type})",
                    f"CAST one side, e.g. ON CAST({cond.left.name} AS TEXT) = {cond.right.name}",
                )
    return expression


def _base_type(column: exp.Column, placeholders: dict[str, str], context: PlanContext):
    base = base_column(column, placeholders, context)
    if base is None:
        return None
    silo, table, name = base
    sql_type = context.schema.get(silo, {}).get(table, {}).get(name)
    actual = context.spelling[(silo, table)][0] if (silo, table) in context.spelling else table
    return (f"{silo}.{actual}.{name}", sql_type) if sql_type else None


def _family(sql_type: str) -> str:
    t = sql_type.upper()
    if t.startswith(("BIGINT", "DOUBLE", "DECIMAL", "INT", "FLOAT")):
        return "number"
    if t.startswith(("TIMESTAMP", "DATE", "TIME")):
        return "time"
    if t == "BOOLEAN":
        return "boolean"
    if t == "BLOB":
        return "binary"
    return "text"
