"""Split aggregates: a partial aggregate in the silo, the final one above (eager aggregation).

For ``SELECT g, SUM(f.x) FROM f JOIN d ON ... GROUP BY g`` where every aggregate reads one
fragment ``f``, ``f`` is grouped in its silo by the columns of ``f`` the rest of the query uses
(join keys, group keys, filters), and the residual combines the partials:

    SUM(x) → SUM(partial sums)         COUNT(*) / COUNT(x) → CAST(COALESCE(SUM(partial counts), 0) AS BIGINT)
    MIN(x) → MIN(partial minima)       MAX(x) → MAX(partial maxima)
    AVG(x) → SUM(partial sums) / SUM(partial counts)

This is exact for inner joins: each partial row joins the same rows as every row it summarises.
It moves one row per group instead of one per input row, and lets an ``aggregates_only`` table
take part in a cross-silo query.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.query.context import PlanContext
from fed_assets.query.tree import entries, is_inner, scoped_columns

# Partial aggregation pays only when a fragment is big enough for the grouping to matter.
MIN_ROWS_TO_SPLIT = 1_000
# ... and only when the statistics say its groups are well below its rows: on near-unique keys
# the partial aggregate moves almost as many rows and the work is done twice. At a quarter, each
# partial row stands for four or more input rows.
MAX_GROUP_SHARE = 0.25
_SPLITTABLE = (exp.Sum, exp.Count, exp.Min, exp.Max, exp.Avg)


def split_aggregates(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Pre-aggregate, in its silo, the one fragment every aggregate of a join reads."""
    from fed_assets.query.cost import estimate_rows

    for select in list(expression.find_all(exp.Select)):
        parts = [*select.expressions, select.args.get("having"), select.args.get("order")]
        aggregates = [a for p in parts if p is not None for a in p.find_all(exp.AggFunc)]
        if not aggregates or not all(_splittable(a) for a in aggregates):
            continue
        sources = entries(select)
        if len(sources) < 2 or not all(is_inner(j) for _, j in sources):
            continue
        placeholders = {
            s.alias_or_name: s.name
            for s, _ in sources
            if isinstance(s, exp.Table) and s.name in context.cuts
        }
        if len(placeholders) != len(sources):
            continue
        readers = {c.table for a in aggregates for c in a.find_all(exp.Column)}
        if len(readers) != 1:
            continue
        (alias,) = readers
        if alias not in placeholders:
            continue  # read through a correlated reference: leave it whole
        cut = context.cuts[placeholders[alias]]
        silo = context.silos[cut.silo]
        if not silo.supports("aggregate"):
            continue
        restricted = any(
            silo.policy.for_table(context.spelling[(cut.silo, t.name)][0]).export
            == "aggregates_only"
            for t in cut.tree.find_all(exp.Table)
        )
        if not restricted:
            rows = estimate_rows(cut.tree, cut.silo, context)
            if rows < MIN_ROWS_TO_SPLIT:
                continue
            grouped = _grouping(select, alias, cut.tree.copy(), [])
            groups = estimate_rows(grouped, cut.silo, context) if grouped.args.get("group") else 1
            if groups > MAX_GROUP_SHARE * rows:
                continue  # near-unique keys: moving the rows costs less than grouping twice
        _split(select, alias, aggregates, cut)
    return expression


def _splittable(agg: exp.AggFunc) -> bool:
    return isinstance(agg, _SPLITTABLE) and not agg.find(exp.Distinct)


def _keys(select: exp.Select, alias: str) -> list[str]:
    """Columns of the fragment ``alias`` that the rest of ``select`` reads outside aggregates."""
    return sorted(
        {c.name for c in scoped_columns(select, {alias}) if c.find_ancestor(exp.AggFunc) is None}
    )


def _grouping(
    select: exp.Select, alias: str, tree: exp.Select, partials: list[exp.Expression]
) -> exp.Select:
    """The fragment ``tree`` grouped by those columns, computing ``partials``."""
    inner = "__pa"
    keys = _keys(select, alias)
    grouped = exp.select(
        *[exp.column(k, table=inner, quoted=True).as_(k, quoted=True) for k in keys],
        *partials or ([] if keys else [exp.Literal.number(1)]),
    ).from_(
        exp.Subquery(this=tree, alias=exp.TableAlias(this=exp.to_identifier(inner, quoted=True)))
    )
    if keys:
        grouped = grouped.group_by(*[exp.column(k, table=inner, quoted=True) for k in keys])
    return grouped


def _split(select: exp.Select, alias: str, aggregates: list[exp.AggFunc], cut) -> None:
    inner = "__pa"
    partials: list[exp.Expression] = []

    def partial(func: exp.Expression) -> exp.Column:
        name = f"__p{len(partials)}"
        moved = func.copy()
        for column in moved.find_all(exp.Column):
            column.set("table", exp.to_identifier(inner, quoted=True))
        partials.append(moved.as_(name, quoted=True))
        return exp.column(name, table=alias, quoted=True)

    for agg in aggregates:
        if isinstance(agg, exp.Sum):
            final = exp.Sum(this=partial(agg))
        elif isinstance(agg, exp.Count):
            # A sum of counts is a HUGEINT in DuckDB; COUNT itself is a BIGINT, and so stays.
            total = exp.func("COALESCE", exp.Sum(this=partial(agg)), exp.Literal.number(0))
            final = exp.cast(total, "BIGINT")
        elif isinstance(agg, (exp.Min, exp.Max)):
            final = type(agg)(this=partial(agg))
        else:  # AVG: sum / count
            total = partial(exp.Sum(this=agg.this.copy()))
            count = partial(exp.Count(this=agg.this.copy()))
            final = exp.Div(
                this=exp.cast(exp.Sum(this=total), "DOUBLE"), expression=exp.Sum(this=count)
            )
        agg.replace(final)
    grouped = _grouping(select, alias, cut.tree, partials)
    cut.tree = grouped
