"""Semi-join filters as SQL: a fragment's rows kept only where an output column is among keys.

The filter is placed where the column is read, not around the fragment: DuckDB does not move an
``IN (SELECT k FROM keys)`` wrapped around a query with correlated subqueries below them, and TPC-H
Q21's lake fragment ran 0.74 s filtered from outside against 0.15 s filtered at the scan. A
filter goes down through projections, inner-join sources and GROUP BY keys; it stops (and stays at
the level above) at LIMIT, OFFSET, window functions, aggregates and set operations, where moving it
would change the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
from sqlglot import exp

KEYS_TABLE = "__fed_keys"

Condition = Callable[[exp.Expression], exp.Expression]


def keys_tables(
    keys: Mapping[str, pa.Array], prefix: str = KEYS_TABLE
) -> tuple[dict[str, str], dict[str, pa.Table]]:
    """For engines that join keys as tables: column → table name, and table name → Arrow table
    with one column ``k`` (to register before running ``keyed_sql(sql, dialect, names)``)."""
    names = {column: f"{prefix}_{i}" for i, column in enumerate(keys)}
    return names, {names[c]: pa.table({"k": values}) for c, values in keys.items()}


def keyed_sql(sql: str, dialect: str, keys: Mapping[str, pa.Array | str | Condition]) -> str:
    """``sql`` keeping only rows whose output columns are among the keys (all must hold); a
    ``str`` in place of the keys names a table ``name(k)`` the engine provides, a ``Condition``
    builds the filter itself (an array parameter, say)."""
    tree = exp.maybe_parse(sql, dialect=dialect)
    outside = []
    for column, values in keys.items():
        condition = _condition(values)
        if not push_filter(tree, column, condition):
            outside.append((column, condition))
    if outside:
        alias = exp.to_identifier("_sj", quoted=True)
        wrapped = exp.select("*").from_(exp.Subquery(this=tree, alias=exp.TableAlias(this=alias)))
        tree = wrapped.where(
            exp.and_(*(make(exp.column(c, table=alias, quoted=True)) for c, make in outside))
        )
    return tree.sql(dialect=dialect, identify=True)


def push_filter(query: exp.Expression, column: str, condition: Condition) -> bool:
    """Add ``condition(<what output column produces>)`` to ``query`` as deep as is safe.

    Returns False, changing nothing, when the filter cannot go inside ``query`` at all.
    """
    from fed_assets.query.tree import entries, is_inner  # the query package imports this module

    if not isinstance(query, exp.Select) or _blocks(query):
        return False
    projection = _projection(query, column)
    if projection is None:
        return False
    value = projection.unalias()
    if value.find(exp.AggFunc, exp.Window, exp.Select):
        return False
    group = query.args.get("group")
    if group is not None and not any(value == g for g in group.expressions):
        return False
    if isinstance(value, exp.Column) and value.table:
        for source, join in entries(query):
            if source.alias_or_name != value.table:
                continue
            if (
                isinstance(source, exp.Subquery)
                and is_inner(join)
                and push_filter(source.this, value.name, condition)
            ):
                return True
    # First in the WHERE: engines plan subquery predicates in the order written, and a key
    # filter is cheap and selective.
    where = query.args.get("where")
    keyed = condition(value.copy())
    query.set("where", exp.Where(this=exp.and_(keyed, where.this) if where else keyed))
    return True


def _condition(values: pa.Array | str | Condition) -> Condition:
    if callable(values):
        return values
    if isinstance(values, str):
        return lambda target: target.isin(query=exp.select("k").from_(values))
    listed = [exp.convert(v) for v in values.to_pylist()] or [exp.null()]
    return lambda target: target.isin(*(v.copy() for v in listed))


def _blocks(select: exp.Select) -> bool:
    """Whether a filter may not move below ``select``'s own output."""
    return bool(
        select.args.get("limit")
        or select.args.get("offset")
        or select.args.get("qualify")
        or any(p.find(exp.Window) for p in select.expressions)
    )


def _projection(select: exp.Select, column: str) -> exp.Expression | None:
    names = {p.alias_or_name: p for p in select.expressions}
    if column in names:
        return names[column]
    folded = {name.lower(): p for name, p in names.items()}
    return folded.get(column.lower())
