"""Derive predicates across equi-join keys: ``a.k = b.k AND a.k < 20`` implies ``b.k < 20``.

The derived predicate is then pushed into ``b``'s silo like any other, so both sides shrink
before anything moves. Only inner joins (WHERE and inner ON conditions) are used.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.query.tree import join_conjuncts

# Comparisons with a constant that carry over to an equal column.
_CARRIED = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Like)


def derive_predicates(expression: exp.Expression) -> exp.Expression:
    """Add, to each SELECT's WHERE, the comparisons implied through its equi-join keys."""
    for select in list(expression.find_all(exp.Select)):
        conditions = join_conjuncts(select)
        equal: list[tuple[exp.Column, exp.Column]] = [
            (c.left, c.right)
            for c in conditions
            if isinstance(c, exp.EQ)
            and isinstance(c.left, exp.Column)
            and isinstance(c.right, exp.Column)
            and c.left.table != c.right.table
        ]
        if not equal:
            continue
        present = {c.sql() for c in conditions}
        derived = []
        for cond in conditions:
            column = _constant_comparison(cond)
            if column is None:
                continue
            for a, b in equal:
                for source, target in ((a, b), (b, a)):
                    if source == column:
                        new = cond.copy()
                        new.find(exp.Column).replace(target.copy())
                        if new.sql() not in present:
                            present.add(new.sql())
                            derived.append(new)
        if derived:
            where = select.args.get("where")
            combined = exp.and_(where.this, *derived) if where else exp.and_(*derived)
            select.set("where", exp.Where(this=combined))
    return expression


def _constant_comparison(cond: exp.Expression) -> exp.Column | None:
    """The column of ``column <op> constant(s)``, else None."""
    if not isinstance(cond, _CARRIED):
        return None
    columns = list(cond.find_all(exp.Column))
    if len(columns) != 1 or cond.find(exp.Subquery, exp.Select) is not None:
        return None
    column = columns[0]
    if cond.this is not column and not (isinstance(cond, exp.Binary) and cond.left is column):
        return None
    return column
