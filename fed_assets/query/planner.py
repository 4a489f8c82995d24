"""The planner: SQL over ``silo.table`` names → fragments per silo + a residual query.

Rules run in order (``RULES``); each is a function of the expression and, if it declares it, the
``PlanContext``. sqlglot's own rules do the generic work (qualification, decorrelation, isolating
each table with its projections and predicates); ours cut fragments, check residency and cost.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping, Sequence

from sqlglot import exp
from sqlglot.optimizer.normalize import normalize
from sqlglot.optimizer.pushdown_predicates import pushdown_predicates
from sqlglot.optimizer.pushdown_projections import pushdown_projections
from sqlglot.optimizer.simplify import simplify

from fed_assets.errors import ConfigurationError
from fed_assets.filters import check_functions
from fed_assets.query.context import PlanContext, SchemaSource, live_schema
from fed_assets.query.cost import estimate_fragment
from fed_assets.query.heap import settle_heap
from fed_assets.query.model import FragmentPlan, Plan
from fed_assets.query.rules.check_join_types import check_join_types
from fed_assets.query.rules.choose_semi_joins import choose_semi_joins
from fed_assets.query.rules.derive_predicates import derive_predicates
from fed_assets.query.rules.enforce_residency import enforce_residency
from fed_assets.query.rules.factor_disjunctions import factor_disjunctions
from fed_assets.query.rules.inline_ctes import inline_ctes
from fed_assets.query.rules.isolate_tables import isolate_tables
from fed_assets.query.rules.merge_same_silo import merge_same_silo, render
from fed_assets.query.rules.name_outputs import name_outputs
from fed_assets.query.rules.order_conjuncts import order_conjuncts
from fed_assets.query.rules.push_limit import push_limit
from fed_assets.query.rules.push_whole_query import push_whole_query
from fed_assets.query.rules.qualify_columns import qualify_columns
from fed_assets.query.rules.resolve_tables import resolve_tables
from fed_assets.query.rules.share_subqueries import share_subqueries
from fed_assets.query.rules.ship_small_sides import ship_small_sides
from fed_assets.query.rules.split_aggregates import split_aggregates
from fed_assets.query.rules.unnest_cross_silo_subqueries import unnest_cross_silo_subqueries
from fed_assets.silo import SiloResource, parse_read_only

# What the cost model can minimise: seconds, or dollars of egress.
OBJECTIVES = ("latency", "money")

RULES = (
    name_outputs,
    resolve_tables,
    inline_ctes,
    qualify_columns,
    push_whole_query,
    unnest_cross_silo_subqueries,
    isolate_tables,
    pushdown_projections,
    normalize,
    factor_disjunctions,
    derive_predicates,
    pushdown_predicates,
    pushdown_projections,  # again: columns only the pushed predicates used need not leave
    merge_same_silo,
    check_join_types,
    push_limit,
    split_aggregates,
    enforce_residency,
    choose_semi_joins,
    ship_small_sides,
    share_subqueries,
    order_conjuncts,
)


def plan(
    sql: str,
    silos: Sequence[SiloResource] | Mapping[str, SiloResource],
    *,
    engine_region: str | None = None,
    objective: str = "latency",
    read: str = "duckdb",
    schema_source: SchemaSource = live_schema,
) -> Plan:
    """Plan ``sql`` (tables named ``silo.table``) without running anything in the silos.

    Raises:
        QuerySyntaxError, ReadOnlyViolation, UnknownSiloError, UnknownTableError,
        UnknownColumnError, PolicyViolation: what is wrong, where, and how to fix it.
    """
    settle_heap()
    started = time.perf_counter()
    if objective not in OBJECTIVES:
        raise ConfigurationError(
            "query",
            f"objective {objective!r} is not one the cost model knows",
            f"use one of {OBJECTIVES}",
        )
    silo_map = silos if isinstance(silos, Mapping) else {s.name: s for s in silos}
    context = PlanContext(
        silos=dict(silo_map),
        engine_region=engine_region,
        objective=objective,
        schema_source=schema_source,
    )
    expression = parse_query(sql, read=read)
    # Before any rule: a function off the allow-list is refused whichever silo it would reach.
    allowed = {name for silo in silo_map.values() for name in silo.allowed_functions}
    check_functions(expression, dialect="duckdb", where="query", allowed=allowed)
    for rule in RULES:
        expression = rule(expression, context) if _wants_context(rule) else rule(expression)
    residual = simplify(expression)
    fragments = tuple(
        FragmentPlan(
            id=fragment_id,
            silo=cut.silo,
            tree=cut.tree,
            sql=render(cut.tree, cut.silo, context),
            tables=tuple(
                sorted({t.name for t in cut.tree.find_all(exp.Table) if t.args.get("db")})
            ),
            estimate=estimate_fragment(cut, context, reduced=fragment_id),
            rule=cut.rule,
            source_region=context.silos[cut.silo].region,
            kind=cut.kind,
        )
        for fragment_id, cut in context.cuts.items()
    )
    return Plan(
        sql=sql,
        fragments=fragments,
        residual=residual.sql(dialect="duckdb", identify=True),
        semi_joins=tuple(context.semi_joins),
        engine_region=engine_region,
        shipped_to=context.ship_to,
        planning_ms=(time.perf_counter() - started) * 1000,
        rules=tuple(r.__name__.lstrip("_") for r in RULES),
        decisions=tuple(context.kept_local.values()),
    )


@functools.cache
def _wants_context(rule: Callable) -> bool:
    """Whether a rule takes the ``PlanContext`` (asked once per rule: ``inspect`` is slow)."""
    return "context" in inspect.signature(rule).parameters


def parse_query(sql: str, *, read: str = "duckdb") -> exp.Expression:
    """Parse one read-only query; refuse anything else with the position of the problem."""
    return parse_read_only(sql, dialect=read, where="query")
