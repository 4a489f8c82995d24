"""Column lineage inside a fragment: which base columns an output column is computed from, and
whether only through an aggregate that hides each member's value."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from fed_assets.query.context import PlanContext
from fed_assets.query.tree import entries

# Aggregates whose result is not any one member's value: a count, a sum, a mean, a spread. The
# others (min, max, any_value, first/last, arg_min/arg_max, string_agg, list/array_agg, mode,
# median, quantiles, bool_and/or, and any function sqlglot does not know) return a value of some
# row, so a column under them counts as moving raw. An allow-list: an unknown aggregate is raw.
VALUE_HIDING_AGGREGATES: tuple[type[exp.AggFunc], ...] = (
    exp.Count,
    exp.CountIf,
    exp.Sum,
    exp.Avg,
    exp.Stddev,
    exp.StddevPop,
    exp.StddevSamp,
    exp.Variance,
    exp.VariancePop,
    exp.ApproxDistinct,
    exp.Corr,
    exp.CovarPop,
    exp.CovarSamp,
)


@dataclass(frozen=True)
class Exported:
    """A base column a fragment's result carries, and whether only inside a value-hiding
    aggregate (``VALUE_HIDING_AGGREGATES``, not as a window function)."""

    table: str
    column: str
    aggregated: bool


def exported_columns(tree: exp.Expression) -> list[Exported]:
    """Base columns (table key, column) carried by ``tree``'s output, traced through subqueries."""
    out: list[Exported] = []
    selects = [tree] if isinstance(tree, exp.Select) else list(tree.find_all(exp.Select))[:1]
    if isinstance(tree, exp.SetOperation):
        selects = [s for s in (tree.left, tree.right)]
    for select in selects:
        for projection in select.expressions:
            out.extend(trace(projection, select, aggregated=False))
    return out


def trace(node: exp.Expression, select: exp.Select, *, aggregated: bool) -> list[Exported]:
    """The base columns an expression of ``select`` is computed from, through derived tables."""
    out = []
    sources = {s.alias_or_name: s for s, _ in entries(select)}
    for column in node.find_all(exp.Column):
        inside = aggregated or hidden_by_aggregate(column)
        source = sources.get(column.table)
        if isinstance(source, exp.Table):
            out.append(Exported(source.name, column.name, inside))
        elif isinstance(source, exp.Subquery) and isinstance(source.this, exp.Select):
            inner = source.this
            for projection in inner.expressions:
                if projection.alias_or_name == column.name:
                    out.extend(trace(projection, inner, aggregated=inside))
    return out


def hidden_by_aggregate(column: exp.Column) -> bool:
    """Whether ``column`` is read only inside a value-hiding aggregate of its own query: every
    aggregate around it hides values, none is a window function (one value per row), and no
    condition inside the aggregate picks rows (``sum(CASE WHEN id = 5 THEN x END)`` is row 5's
    ``x``, whatever the group's size)."""
    node, found = column.parent, False
    while node is not None and not isinstance(node, exp.Select):
        if isinstance(node, exp.Window):
            return False
        if isinstance(node, exp.AggFunc):
            if not isinstance(node, VALUE_HIDING_AGGREGATES) or picks_rows(node):
                return False
            found = True
        node = node.parent
    return found


def picks_rows(aggregate: exp.AggFunc) -> bool:
    """Whether the aggregate's argument holds a condition, which can choose one row of the
    group (also ``x * (id = 5)::INT``): then the group's size no longer protects its members."""
    return any(isinstance(n, _PICKS_ROWS) for n in aggregate.walk() if n is not aggregate)


# Expressions that choose between rows' values inside an aggregate's argument.
_PICKS_ROWS = (exp.Case, exp.If, exp.Decode, exp.Nullif, exp.Predicate)


def base_column(
    column: exp.Column, placeholders: dict[str, str], context: PlanContext
) -> tuple[str, str, str] | None:
    """(silo, table key, column) a residual column reads, when it is a plain column of one base
    table inside its fragment; None for computed columns."""
    fragment_id = placeholders.get(column.table)
    if fragment_id is None:
        return None
    cut = context.cuts[fragment_id]
    tree = cut.tree
    while isinstance(tree, exp.Select) and tree.is_star:
        source = entries(tree)[0][0]
        if not isinstance(source, exp.Subquery):
            return None
        tree = source.this
    if not isinstance(tree, exp.Select):
        return None
    projection = next((p for p in tree.expressions if p.alias_or_name == column.name), None)
    if projection is None or not isinstance(projection.unalias(), exp.Column):
        return None
    bases = trace(projection, tree, aggregated=False)
    if len(bases) != 1:
        return None
    return cut.silo, bases[0].table, bases[0].column
