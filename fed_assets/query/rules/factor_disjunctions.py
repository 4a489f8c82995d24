"""Factor disjunctions across tables: what every branch of an OR says about one table.

TPC-H Q19 filters a join with ``(p.k = l.k AND p.brand = 'A' AND l.qty < 11) OR (p.k = l.k AND
p.brand = 'B' AND l.qty > 10)``: no conjunct names one table alone, so nothing would be pushed
into either silo and the join would run over both tables whole. The OR implies

- the conjuncts every branch shares (``p.k = l.k``: now an equi-join key), and
- per table, the OR of each branch's conjuncts over that table alone (``p.brand = 'A' OR
  p.brand = 'B'``), when every branch has one.

Both are added to WHERE beside the OR, which stays: the result is unchanged, and predicate
pushdown then carries each table's part into its silo.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.query.tree import conjuncts, refs, where_conjuncts


def factor_disjunctions(expression: exp.Expression) -> exp.Expression:
    """Add to each WHERE the common and per-table predicates its cross-table ORs imply."""
    for select in list(expression.find_all(exp.Select)):
        where = select.args.get("where")
        if where is None:
            continue
        present = {c.sql() for c in where_conjuncts(select)}
        implied: list[exp.Expression] = []
        for condition in where_conjuncts(select):
            for new in _implied(condition.unnest()):
                if new.sql() not in present:
                    present.add(new.sql())
                    implied.append(new)
        if implied:
            select.set("where", exp.Where(this=exp.and_(where.this, *implied)))
    return expression


def _implied(condition: exp.Expression) -> list[exp.Expression]:
    """The predicates an OR across several tables implies (empty for anything else)."""
    if not isinstance(condition, exp.Or) or len(refs(condition)) < 2:
        return []
    if condition.find(exp.Select) is not None:
        return []  # a subquery in a branch: leave the OR as written
    branches = [conjuncts(b.unnest()) for b in condition.flatten()]
    shared = set.intersection(*({c.sql() for c in b} for b in branches))
    out = [c.copy() for c in branches[0] if c.sql() in shared]
    tables = set.intersection(*({t for c in b for t in _alone(c)} for b in branches))
    for table in sorted(tables):
        parts = [
            exp.and_(*(c.copy() for c in branch if _alone(c) == {table} and c.sql() not in shared))
            for branch in branches
            if any(_alone(c) == {table} and c.sql() not in shared for c in branch)
        ]
        if len(parts) == len(branches):  # every branch restricts this table
            out.append(exp.paren(exp.or_(*parts)))
    return out


def _alone(condition: exp.Expression) -> set[str]:
    """The one table a conjunct reads, as a set (empty when it reads none or several)."""
    tables = refs(condition)
    return tables if len(tables) == 1 else set()
