"""Inline common table expressions as derived tables, so fragments can be cut through them."""

from __future__ import annotations

from sqlglot import exp

from fed_assets.errors import QuerySyntaxError


def inline_ctes(expression: exp.Expression) -> exp.Expression:
    """Replace each reference to a CTE by a copy of its query; drop the WITH clauses.

    A CTE read twice is planned twice: each copy's filters and projections are pushed into the
    silos separately, which moves less data than sharing one wide result.
    """
    for with_ in reversed(list(expression.find_all(exp.With))):
        if with_.args.get("recursive"):
            raise QuerySyntaxError(
                "query", "recursive CTEs cannot be federated", "materialise the recursion first"
            )
        owner = with_.parent
        ctes = list(with_.expressions)
        with_.pop()
        for i, cte in enumerate(ctes):
            name = cte.alias_or_name
            scopes = [c.this for c in ctes[i + 1 :]] + [owner]
            for scope in scopes:
                for table in list(scope.find_all(exp.Table)):
                    if table.db or table.name != name:
                        continue
                    alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(name))
                    if cte.args.get("alias") and cte.args["alias"].columns and not alias.columns:
                        alias = alias.copy()
                        alias.set("columns", [c.copy() for c in cte.args["alias"].columns])
                    table.replace(exp.Subquery(this=cte.this.copy(), alias=alias))
    return expression
