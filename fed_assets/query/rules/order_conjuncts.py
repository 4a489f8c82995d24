"""Order each WHERE so plain predicates come first and scalar-subquery comparisons last.

The simplifier sorts conjuncts in its own order, and DuckDB plans subquery predicates in the order
written: a correlated ``x > (SELECT ... )`` placed before a cheap ``IN`` filter is evaluated over
every row (TPC-H Q20's lake fragment: 0.093 s against 0.056 s with the ``IN`` first). Engines
that reorder predicates themselves are unaffected.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.query.context import PlanContext
from fed_assets.query.tree import conjuncts


def order_conjuncts(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Stable-sort the conjuncts of every WHERE, in the fragments and the residual query."""
    for tree in [expression, *(cut.tree for cut in context.cuts.values())]:
        for select in tree.find_all(exp.Select):
            where = select.args.get("where")
            parts = conjuncts(where.this if where else None)
            if len(parts) > 1:
                ordered = sorted(parts, key=_rank)
                if ordered != parts:
                    where.set("this", exp.and_(*(p.copy() for p in ordered)))
    return expression


def _rank(condition: exp.Expression) -> int:
    """0: no subquery; 1: IN / EXISTS over a subquery; 2: a comparison with a scalar subquery."""
    inner = condition.unnest() if isinstance(condition, exp.Paren) else condition
    if inner.find(exp.Select) is None:
        return 0
    if isinstance(inner, (exp.In, exp.Exists)) or (
        isinstance(inner, exp.Not) and isinstance(inner.this, (exp.In, exp.Exists))
    ):
        return 1
    return 2
