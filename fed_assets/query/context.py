"""What every planner rule may read: the silos, their schemas, and the fragments made so far."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
from sqlglot import exp

from fed_assets.query.model import SemiJoin
from fed_assets.silo import SiloResource

# Reads a table's Arrow schema: live from the silo by default, from a catalog snapshot when a
# code location validates SQL at load time without reaching any silo.
SchemaSource = Callable[[SiloResource, str], pa.Schema]


def live_schema(silo: SiloResource, table: str) -> pa.Schema:
    return silo.cached_schema(table)


@dataclass
class PlanContext:
    """Mutable state threaded through the rules of one planning run.

    Attributes:
        silos: silo name → resource.
        engine_region: where the residual query runs; ``None`` is "outside every silo's region".
        objective: what the cost model minimises.
        schema: silo → table (lower case) → column (lower case) → SQL type, for sqlglot.
        spelling: (silo, table lower) → (the silo's table name, column lower → silo's spelling).
        cuts: fragments cut so far, by placeholder id.
        semi_joins: key transfers chosen by the cost model.
        stats: table statistics read during this planning run (each table is asked once).
        reduced_rows: fragment id → estimated rows once its semi-join keys have filtered it.
        ship_to: the silo the residual query runs in, with the other fragments shipped into it
            (``None``: the embedded engine runs it).
    """

    silos: Mapping[str, SiloResource]
    engine_region: str | None = None
    objective: Literal["latency", "money"] = "latency"
    schema_source: SchemaSource = live_schema
    schema: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    arrow: dict[tuple[str, str], pa.Schema] = field(default_factory=dict)
    spelling: dict[tuple[str, str], tuple[str, dict[str, str]]] = field(default_factory=dict)
    cuts: dict[str, Cut] = field(default_factory=dict)
    semi_joins: list[SemiJoin] = field(default_factory=list)
    stats: dict[tuple[str, str], object] = field(default_factory=dict)
    reduced_rows: dict[str, float] = field(default_factory=dict)
    ship_to: str | None = None
    widths: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)
    """silo → (schemas indexed, column lower → Arrow bytes): the cost model's width index."""
    kept_local: dict[str, str] = field(default_factory=dict)
    """silo → why its joins run in the embedded engine: the silo priced running them itself
    above moving their tables (``merge_same_silo``)."""
    _next: int = 0

    def cut(self, silo: str, tree: exp.Select) -> str:
        """Register ``tree`` as a fragment of ``silo``; return its placeholder name."""
        fragment_id = f"__f{self._next}"
        self._next += 1
        self.cuts[fragment_id] = Cut(silo=silo, tree=tree)
        return fragment_id


@dataclass
class Cut:
    """A fragment while planning: the silo it runs in and its tree (DuckDB dialect, ``silo.table``
    names). ``rule`` and ``kind`` (what its result moves as: rows, aggregates, shipped; see
    ``fed_assets.residency.KINDS``) are filled by the residency check."""

    silo: str
    tree: exp.Select
    rule: str = "export allowed"
    kind: str = "rows"
