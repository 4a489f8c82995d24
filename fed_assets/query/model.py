"""Values that flow between the planner, the executor and the reports (all frozen)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from fed_assets.residency import Route


@dataclass(frozen=True)
class Estimate:
    """Estimated rows and bytes of a fragment's result, and the cost of moving it."""

    rows: float
    bytes: float
    seconds: float = 0.0
    usd: float = 0.0


@dataclass(frozen=True)
class FragmentPlan:
    """A subtree of the query that runs inside one silo.

    Attributes:
        id: placeholder name the residual query reads it as (``__f0``, ``__f1``, ...).
        silo: silo name.
        tree: the fragment as a sqlglot tree over ``silo.table`` names (DuckDB dialect).
        sql: the SQL sent to the silo, in its dialect.
        tables: the silo tables it reads.
        estimate: what the cost model expects it to return.
        rule: the residency rule that allows its result to leave the silo.
        kind: what its result moves as (``"rows"``, ``"aggregates"``, ``"shipped"``).
    """

    id: str
    silo: str
    tree: exp.Select
    sql: str
    tables: tuple[str, ...]
    estimate: Estimate
    rule: str = "export allowed"
    source_region: str = "local"
    kind: str = "rows"


@dataclass(frozen=True)
class SemiJoin:
    """Send ``source``'s distinct ``source_column`` values into ``target`` as a filter; ``rule``
    is the residency rule that lets the keys go into the target's region."""

    source: str
    source_column: str
    target: str
    target_column: str
    rule: str = "export allowed"
    source_rows: float | None = None
    """The source's estimated rows when the semi-join was chosen."""
    target_rows: float | None = None
    """The target's estimated rows before any keys filter it."""
    source_domain: float | None = None
    """Distinct values the source column's base table holds: a source that keeps (nearly) all of
    them filters (nearly) nothing."""


@dataclass(frozen=True)
class Plan:
    """A planned federated query: fragments per silo and the residual SQL above them."""

    sql: str
    fragments: tuple[FragmentPlan, ...]
    residual: str
    semi_joins: tuple[SemiJoin, ...]
    engine_region: str | None
    planning_ms: float
    rules: tuple[str, ...]
    shipped_to: str | None = None
    """The silo that runs ``residual``, with the other fragments' results shipped in as tables
    and its own fragments as CTEs; ``None``: the embedded engine runs it."""
    decisions: tuple[str, ...] = ()
    """What planning decided from a silo's own estimates (work kept out of a silo), one line each."""

    @property
    def fragments_go_to(self) -> str:
        """The region the fragments' results move to: the host silo's when shipped, else the
        engine's (``"engine"`` when no region is set)."""
        if self.shipped_to is not None:
            return next(f.source_region for f in self.fragments if f.silo == self.shipped_to)
        return self.engine_region or "engine"

    def fragment(self, fragment_id: str) -> FragmentPlan:
        return next(f for f in self.fragments if f.id == fragment_id)

    def explain(self) -> str:
        """The plan as text: residual query, then each fragment with its estimate and rule."""
        from fed_assets.query.report import explain_plan

        return explain_plan(self)


@dataclass(frozen=True)
class FragmentRun:
    """What running one fragment did."""

    id: str
    silo: str
    sql: str
    rows: int
    bytes: int
    seconds: float
    est_rows: float
    est_bytes: float
    source_region: str
    destination_region: str
    rule: str
    attempts: int = 1
    semi_join_keys: int | None = None

    @property
    def q_error(self) -> float:
        """How far the row estimate was off: max(est/actual, actual/est), both at least 1."""
        estimated, actual = max(self.est_rows, 1.0), max(float(self.rows), 1.0)
        return max(estimated / actual, actual / estimated)


@dataclass(frozen=True)
class QueryResult:
    """A federated query's result, plan and what moved where."""

    table: pa.Table
    plan: Plan
    fragments: tuple[FragmentRun, ...]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    """Every movement the query made: fragment results, semi-join keys, shipped tables and a
    shipped plan's result, each with its rows, bytes and the rule that allowed it."""
    decisions: tuple[str, ...] = ()
    """What the executor decided once actual sizes were known, and why (``adaptive``)."""

    @property
    def planning_ms(self) -> float:
        return self.plan.planning_ms

    @property
    def bytes_moved(self) -> int:
        """Total bytes moved on every route (out of silos, keys into silos)."""
        return sum(r.bytes or 0 for r in self.routes)

    @property
    def bytes_by_route(self) -> dict[tuple[str, str, str], int]:
        """Bytes moved by (source silo, source region, destination region), keys included."""
        out: dict[tuple[str, str, str], int] = {}
        for r in self.routes:
            key = (r.silo, r.source_region, r.destination_region)
            out[key] = out.get(key, 0) + (r.bytes or 0)
        return out

    def explain(self) -> str:
        """The plan with the actual rows, bytes and seconds of each fragment."""
        from fed_assets.query.report import explain_result

        return explain_result(self)
