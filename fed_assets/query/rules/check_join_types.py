"""Refuse cross-silo equi-joins whose keys have incompatible types, before anything moves.

``customers.id`` (an integer in one silo) ``= countries.code`` (text in another) would otherwise
fail deep inside a silo or the embedded engine; the error names both columns and the fix.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.errors import FedAssetsError
from fed_assets.query.context import PlanContext
from fed_assets.query.rules.enforce_residency import trace
from fed_assets.query.tree import conjuncts, entries, where_conjuncts


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
        conditions = where_conjuncts(select) + [
            c for _, j in entries(select)[1:] for c in conjuncts(j.args.get("on"))
        ]
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
    fragment_id = placeholders.get(column.table)
    if fragment_id is None:
        return None
    cut = context.cuts[fragment_id]
    tree = cut.tree
    while not isinstance(tree, exp.Select) or tree.is_star:
        if isinstance(tree, exp.Select) and tree.is_star:
            source = entries(tree)[0][0]
            if not isinstance(source, exp.Subquery):
                return None
            tree = source.this
        else:
            return None
    projection = next((p for p in tree.expressions if p.alias_or_name == column.name), None)
    if projection is None or not isinstance(projection.unalias(), exp.Column):
        return None
    bases = trace(projection, tree, aggregated=False)
    if len(bases) != 1:
        return None
    table, name = bases[0].table, bases[0].column
    sql_type = context.schema.get(cut.silo, {}).get(table, {}).get(name)
    actual = (
        context.spelling[(cut.silo, table)][0] if (cut.silo, table) in context.spelling else table
    )
    return (f"{cut.silo}.{actual}.{name}", sql_type) if sql_type else None


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
