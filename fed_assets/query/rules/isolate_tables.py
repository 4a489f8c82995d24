"""Wrap each base table that shares a scope with other sources in its own subquery.

sqlglot's ``isolate_table_selects`` does this with ``SELECT *`` and needs a second ``qualify`` to
expand the star (a sixth of all planning time). Here the subquery lists the table's columns from
the silo schemas the query was qualified against, so the later pushdown rules can prune them and
push predicates into each table's own subquery, which is what a fragment is cut from.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from fed_assets.query.context import PlanContext


def isolate_tables(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """``FROM silo.t AS a JOIN ...`` → ``FROM (SELECT a.c1 AS c1, ... FROM silo.t AS a) AS a``."""
    for scope in traverse_scope(expression):
        if len(scope.selected_sources) == 1:
            continue
        for _, source in scope.selected_sources.values():
            if (
                not isinstance(source, exp.Table)
                or not source.args.get("db")
                or isinstance(source.parent, exp.Subquery)
                or isinstance(source.parent.parent, exp.Table)
            ):
                continue
            columns = context.schema.get(source.args["db"].name, {}).get(source.name)
            if not columns:
                continue
            alias = source.alias_or_name
            select = exp.select(
                *(exp.column(c, table=alias, quoted=True).as_(c, quoted=True) for c in columns)
            )
            replacement = exp.Subquery(
                this=select, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
            )
            source.replace(replacement)
            select.from_(source, copy=False)
    return expression
