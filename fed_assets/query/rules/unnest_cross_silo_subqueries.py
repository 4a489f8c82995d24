"""Decorrelate only the subqueries that cross silos; leave the ones one silo can run as they are.

sqlglot's ``unnest_subqueries`` turns every correlated subquery into a join, so that its parts can
be cut into fragments. A subquery whose tables all live in the silo of the outer tables it
correlates with needs no such rewrite: it goes into that silo's fragment whole, and the silo's own
optimizer decorrelates it better than the generic rewrite does (TPC-H Q21's EXISTS / NOT EXISTS
over lineitem ran 0.55 s as ARRAY_AGG + LIST_FILTER joins, against 0.2 s as written).

Such subqueries are hidden from sqlglot's rule behind a marker and put back after it.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.unnest_subqueries import unnest_subqueries

from fed_assets.query.tree import entries

_MARKER = "__fed_kept_subquery_"


def unnest_cross_silo_subqueries(expression: exp.Expression) -> exp.Expression:
    """``unnest_subqueries`` for the subqueries that span silos (see module docstring)."""
    kept: dict[str, exp.Select] = {}
    _hide(expression, kept)
    expression = unnest_subqueries(expression)
    if kept:
        for marker in list(expression.find_all(exp.Var)):
            original = kept.get(marker.name)
            if original is not None:
                marker.replace(original)
    return expression


def _hide(node: exp.Expression, kept: dict[str, exp.Select]) -> None:
    """Replace, top down, each expression subquery one silo can run by a marker."""
    for select in list(node.find_all(exp.Select)):
        if not _attached(select, node):
            continue  # hidden already, inside an enclosing subquery
        outer = select.parent_select
        if outer is None or select is node or not _is_expression_subquery(select):
            continue
        if _one_silo(select, outer):
            name = f"{_MARKER}{len(kept)}"
            kept[name] = select
            select.replace(exp.var(name))


def _attached(select: exp.Expression, root: exp.Expression) -> bool:
    node = select
    while node.parent is not None:
        node = node.parent
    return node is root


def _is_expression_subquery(select: exp.Select) -> bool:
    """A subquery used as a value or predicate (EXISTS, IN, scalar), not a FROM/JOIN source."""
    parent = select.parent
    if isinstance(parent, exp.Subquery):
        return not isinstance(parent.parent, (exp.From, exp.Join))
    return isinstance(parent, (exp.Exists, exp.In, exp.Any, exp.All))


def _one_silo(select: exp.Select, outer: exp.Select) -> bool:
    """All of ``select``'s tables are in one silo, and so is every outer table it correlates with."""
    tables = list(select.find_all(exp.Table))
    silos = {t.args["db"].name if t.args.get("db") else None for t in tables}
    if len(silos) != 1 or None in silos:
        return False
    (silo,) = silos
    inner_aliases = {t.alias_or_name for t in tables} | {
        s.alias_or_name for s in select.find_all(exp.Subquery) if s.alias_or_name
    }
    outer_sources = {source.alias_or_name: source for source, _ in entries(outer)}
    for column in select.find_all(exp.Column):
        if not column.table or column.table in inner_aliases:
            continue
        source = outer_sources.get(column.table)
        if not (
            isinstance(source, exp.Table)
            and source.args.get("db")
            and source.args["db"].name == silo
        ):
            return False
    return True
