"""Name unaliased output expressions as DuckDB would (``sum(l_quantity)``), before qualification
renames them ``_col_N``: a federated query returns the columns the same query would locally."""

from __future__ import annotations

from sqlglot import exp


def name_outputs(expression: exp.Expression) -> exp.Expression:
    """Alias each unaliased, non-column projection of the outermost query by its own text."""
    select = expression
    while isinstance(select, exp.SetOperation):
        select = select.left
    if not isinstance(select, exp.Select):
        return expression
    for projection in list(select.expressions):
        if isinstance(projection, (exp.Alias, exp.Column, exp.Star)):
            continue
        name = projection.sql(dialect="duckdb", normalize_functions="lower")
        projection.replace(exp.alias_(projection.copy(), name, quoted=True))
    return expression
