"""Compute a derived table that a fragment repeats once, as a CTE of the fragment.

A CTE read twice is inlined twice (``inline_ctes``), so that each copy's filters and columns can be
pushed on their own. When both copies land in the same fragment they differ at most in the
columns they keep, and the silo would compute the same aggregate twice (TPC-H Q15's ``revenue``:
0.076 s as two subqueries, 0.040 s as one CTE in DuckDB). Here such copies become one CTE with the
union of their columns, which the silo's engine computes once.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.query.context import PlanContext

_PREFIX = "__shared_"


def share_subqueries(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Turn repeated derived tables inside each fragment into one CTE per repetition."""
    for cut in context.cuts.values():
        if isinstance(cut.tree, exp.Select) and not cut.tree.args.get("with_"):
            _share(cut.tree)
    return expression


def _share(tree: exp.Select) -> None:
    groups: dict[str, list[exp.Subquery]] = {}
    for sub in tree.find_all(exp.Subquery):
        if isinstance(sub.this, exp.Select) and isinstance(sub.parent, (exp.From, exp.Join)):
            groups.setdefault(_body_key(sub.this), []).append(sub)
    shared = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        body = _union_of_columns([m.this for m in members])
        if body is None:
            continue
        name = f"{_PREFIX}{shared}"
        shared += 1
        for member in members:
            alias = member.args.get("alias")
            member.replace(exp.Table(this=exp.to_identifier(name, quoted=True), alias=alias.copy()))
        tree.with_(exp.to_identifier(name, quoted=True), as_=body, copy=False)


def _body_key(select: exp.Select) -> str:
    """The query without its select list: equal keys read the same rows the same way."""
    bare = select.copy()
    bare.set("expressions", [exp.Star()])
    return bare.sql(dialect="duckdb")


def _union_of_columns(selects: list[exp.Select]) -> exp.Select | None:
    """One select with every column the copies keep; None when a name means two things."""
    columns: dict[str, exp.Expression] = {}
    for select in selects:
        for projection in select.expressions:
            name = projection.alias_or_name
            if name in columns and columns[name] != projection:
                return None
            columns.setdefault(name, projection)
    body = selects[0].copy()
    body.set("expressions", [p.copy() for p in columns.values()])
    return body
