"""Push LIMIT and TopN into fragments where the rows that survive can only come from them.

- ``... FROM p LEFT JOIN q ... [ORDER BY p's columns] LIMIT n``: a left join keeps every row of
  ``p`` and only adds rows, so ``p``'s top ``n`` rows are enough;
- ``LIMIT n`` over a ``UNION ALL`` (no ORDER BY): each branch needs at most ``n`` rows.

A query whose tables all live in one silo already takes its LIMIT with it (merge_same_silo).
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.query.context import PlanContext
from fed_assets.query.tree import entries


def push_limit(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Copy each pushable LIMIT (with its ORDER BY) into the fragments it bounds."""
    for select in list(expression.find_all(exp.Select)):
        limit = select.args.get("limit")
        if limit is None or not isinstance(limit.expression, exp.Literal):
            continue
        if select.args.get("group") or select.args.get("distinct") or select.args.get("where"):
            continue
        if any(p.find(exp.AggFunc, exp.Window) for p in select.expressions):
            continue
        sources = entries(select)
        head = sources[0][0] if sources else None
        if all((j.args.get("side") or "").upper() == "LEFT" for _, j in sources[1:]):
            if isinstance(head, exp.Table) and head.name in context.cuts:
                _limit_left_join_head(select, head, limit, context)
            elif (
                isinstance(head, exp.Subquery)
                and len(sources) == 1
                and not select.args.get("order")
            ):
                _limit_union(head.this, limit, context)
    return expression


def _limit_left_join_head(
    select: exp.Select, head: exp.Table, limit: exp.Limit, context: PlanContext
) -> None:
    order = select.args.get("order")
    alias = head.alias_or_name
    if order is not None and any(c.table != alias for c in order.find_all(exp.Column)):
        return
    cut = context.cuts[head.name]
    if not context.silos[cut.silo].supports("limit"):
        return
    inner = exp.TableAlias(this=exp.to_identifier("_top", quoted=True))
    bounded = exp.select("*").from_(exp.Subquery(this=cut.tree, alias=inner))
    if order is not None:
        if not context.silos[cut.silo].supports("order_by"):
            return
        ordered = order.copy()
        for column in ordered.find_all(exp.Column):
            column.set("table", exp.to_identifier("_top", quoted=True))
        bounded.set("order", ordered)
    bounded.set("limit", limit.copy())
    cut.tree = bounded


def _limit_union(node: exp.Expression, limit: exp.Limit, context: PlanContext) -> None:
    if not (isinstance(node, exp.Union) and not node.args.get("distinct")):
        return
    for side in (node.left, node.right):
        if isinstance(side, exp.Union):
            _limit_union(side, limit, context)
            continue
        source = entries(side)[0][0] if isinstance(side, exp.Select) and entries(side) else None
        if (
            isinstance(source, exp.Table)
            and source.name in context.cuts
            and side.args.get("limit") is None
            and context.silos[context.cuts[source.name].silo].supports("limit")
        ):
            cut = context.cuts[source.name]
            if cut.tree.args.get("limit") is None:
                cut.tree = cut.tree.copy().limit(limit.expression.copy())
