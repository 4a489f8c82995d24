"""Small helpers over sqlglot trees that several planner rules share."""

from __future__ import annotations

from sqlglot import exp

# Join kinds that behave as inner joins (their ON conditions may move to WHERE).
INNER_KINDS = frozenset({"", "INNER", "CROSS"})


def entries(select: exp.Select) -> list[tuple[exp.Expression, exp.Join | None]]:
    """The FROM source (with ``None``) and each joined source with its join, in order."""
    from_ = select.args.get("from_")
    head = [(from_.this, None)] if from_ else []
    return head + [(j.this, j) for j in select.args.get("joins") or []]


def set_from(select: exp.Select, source: exp.Expression) -> None:
    select.set("from_", exp.From(this=source))


def is_inner(join: exp.Join | None) -> bool:
    """Whether a join (``None`` for the FROM source) is an inner or cross join."""
    if join is None:
        return True
    return not join.args.get("side") and (join.args.get("kind") or "").upper() in INNER_KINDS


def conjuncts(condition: exp.Expression | None) -> list[exp.Expression]:
    """The AND-ed parts of a condition."""
    if condition is None:
        return []
    return list(condition.flatten()) if isinstance(condition, exp.And) else [condition]


def where_conjuncts(select: exp.Select) -> list[exp.Expression]:
    """The AND-ed parts of a SELECT's WHERE."""
    where = select.args.get("where")
    return conjuncts(where.this if where else None)


def join_conjuncts(select: exp.Select, *, inner_only: bool = True) -> list[exp.Expression]:
    """The AND-ed parts of a SELECT's WHERE, then of its joins' ON conditions, in FROM order.

    ``inner_only`` keeps only the ON conditions of inner and cross joins (those that filter the
    joined rows as a WHERE would); otherwise every join's ON condition counts.
    """
    conditions = where_conjuncts(select)
    for _, join in entries(select)[1:]:
        if not inner_only or is_inner(join):
            conditions += conjuncts(join.args.get("on"))
    return conditions


def cte_names(tree: exp.Expression) -> set[str]:
    """The names (lower case) of the common table expressions a statement defines."""
    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


def refs(node: exp.Expression) -> set[str]:
    """Table aliases the columns in ``node`` refer to."""
    return {c.table for c in node.find_all(exp.Column) if c.table}


def scoped_columns(select: exp.Select, aliases: set[str]) -> list[exp.Column]:
    """Columns under ``select`` that refer to its own sources named ``aliases``.

    A nested query that defines a source of the same alias shadows it (a decorrelated subquery
    often reuses the outer query's alias), so its columns are left out.
    """
    return [
        column
        for column in select.find_all(exp.Column)
        if column.table in aliases and not _shadowed(column, select)
    ]


def outer_refs(node: exp.Expression) -> set[str]:
    """Table aliases the columns in ``node`` refer to outside it: like ``refs``, less the aliases
    a query inside ``node`` defines for itself."""
    return {
        column.table
        for column in node.find_all(exp.Column)
        if column.table and not _shadowed(column, node, inclusive=True)
    }


def _shadowed(column: exp.Column, top: exp.Expression, *, inclusive: bool = False) -> bool:
    """Whether a query between ``column`` and ``top`` defines a source named ``column.table``."""
    node = column.parent
    while node is not None and (node is not top or inclusive):
        if isinstance(node, exp.Select) and any(
            s.alias_or_name == column.table for s, _ in entries(node)
        ):
            return True
        if node is top:
            break
        node = node.parent
    return False
