"""Federated queries: one SQL over many silos, pushed down, placed by cost, checked for residency.

``query(sql, silos)`` plans and runs; ``explain(sql, silos)`` plans only. Tables are named
``silo.table`` (or ``silo.schema.table``).
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Mapping, Sequence

from fed_assets.errors import UnsupportedFunctionError
from fed_assets.query.execute import ResidualQueryError, execute
from fed_assets.query.functions import remember_missing
from fed_assets.query.model import Estimate, FragmentPlan, FragmentRun, Plan, QueryResult, SemiJoin
from fed_assets.query.planner import RULES, parse_query, plan
from fed_assets.query.rules.enforce_residency import PolicyViolation
from fed_assets.query.rules.qualify_columns import AmbiguousColumnError
from fed_assets.silo import SiloPolicy, SiloResource, TablePolicy


def _with_policy(
    silos: Sequence[SiloResource] | Mapping[str, SiloResource],
    policy: Mapping[str, SiloPolicy | TablePolicy] | None,
) -> dict[str, SiloResource]:
    """Silos by name, with extra policies applied: keys 'silo' (SiloPolicy) or 'silo.table'."""
    silo_map = dict(silos) if isinstance(silos, Mapping) else {s.name: s for s in silos}
    for key, extra in (policy or {}).items():
        name, _, table = key.partition(".")
        silo = silo_map[name]
        if isinstance(extra, SiloPolicy):
            silo_map[name] = silo.model_copy(update={"policy": extra})
        else:
            tables = {**silo.policy.tables, table: extra}
            new_policy = silo.policy.model_copy(update={"tables": tables})
            silo_map[name] = silo.model_copy(update={"policy": new_policy})
    return silo_map


def query(
    sql: str,
    silos: Sequence[SiloResource] | Mapping[str, SiloResource],
    *,
    policy: Mapping[str, SiloPolicy | TablePolicy] | None = None,
    engine_region: str | None = None,
    objective: str = "latency",
    timeout_s: float | None = None,
    query_timeout_s: float | None = None,
    memory_limit: str | None = None,
    progress=None,
) -> QueryResult:
    """Plan and run ``sql`` over ``silos``; the result is an Arrow table with its plan and audit.

    Args:
        policy: extra residency rules by ``"silo"`` or ``"silo.table"``, on top of the silos' own.
        engine_region: where the embedded engine runs (data staying in its own region is always
            allowed); ``None`` treats every silo's data as leaving its region.
        objective: ``"latency"`` (default) or ``"money"``.
        timeout_s: seconds one fragment may run in its silo (default
            ``execute.FRAGMENT_TIMEOUT_S``; a silo's ``statement_timeout_s`` may lower it). Past it the
            statement is cancelled in the silo and ``SiloTimeoutError`` names silo, fragment, bound.
        query_timeout_s: seconds the fragments may take together (default
            ``execute.QUERY_TIMEOUT_S``).
        memory_limit: memory the embedded engine may use for the residual query (DuckDB's
            syntax, e.g. ``"8GB"``; default ``execute.MEMORY_LIMIT``).
    """
    silo_map = _with_policy(silos, policy)
    kwargs = {
        k: v
        for k, v in (
            ("timeout_s", timeout_s),
            ("query_timeout_s", query_timeout_s),
            ("memory_limit", memory_limit),
        )
        if v is not None
    }
    with contextlib.ExitStack() as held:
        for silo in silo_map.values():
            held.enter_context(silo.hold())
        while True:
            planned = plan(sql, silo_map, engine_region=engine_region, objective=objective)
            try:
                return execute(planned, silo_map, progress=progress, **kwargs)
            except UnsupportedFunctionError as err:
                # The silo lacks a function sqlglot sent it: plan again with it evaluated above.
                # Each round learns one new function, so this ends; a known one means it could
                # not move.
                if err.silo not in silo_map or not remember_missing(
                    silo_map[err.silo], err.function
                ):
                    raise


def explain(
    sql: str,
    silos: Sequence[SiloResource] | Mapping[str, SiloResource],
    *,
    policy: Mapping[str, SiloPolicy | TablePolicy] | None = None,
    engine_region: str | None = None,
) -> str:
    """The plan for ``sql`` as text, without running anything in the silos."""
    return plan(sql, _with_policy(silos, policy), engine_region=engine_region).explain()


__all__ = [
    "RULES",
    "AmbiguousColumnError",
    "Estimate",
    "FragmentPlan",
    "FragmentRun",
    "Plan",
    "PolicyViolation",
    "QueryResult",
    "ResidualQueryError",
    "SemiJoin",
    "execute",
    "explain",
    "parse_query",
    "plan",
    "query",
]


class _CallablePackage(types.ModuleType):
    """``fed_assets.query`` is both this package and the function ``query``: Python binds the
    package to ``fed_assets.query`` whenever any of its modules is imported (``import fed_assets``
    itself stays lazy), so calling the package runs the function either way."""

    def __call__(self, *args, **kwargs) -> QueryResult:
        return query(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
