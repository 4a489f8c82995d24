"""Where a federated query's embedded engine runs: the allowed region that moves the least.

Each candidate region of the estate is planned (from the catalog snapshot, so nothing contacts a
silo); a region some input's residency policy refuses is out, with the planner's reason; the
rest are ranked by the dollars of egress their fragments cost at the estate's link prices, then
by the bytes that cross a region boundary, then by the estimated seconds to move them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fed_assets.placement.errors import PlacementRefused
from fed_assets.query.model import Plan
from fed_assets.silo import SiloPolicy, SiloResource, TablePolicy

if TYPE_CHECKING:
    from fed_assets.catalog import Catalog
    from resources.compute import ComputeEstate

# What an engine placement can minimise, as sort keys over a RegionCost.
ENGINE_OBJECTIVES = {
    "money": lambda c: (c.usd, c.bytes_crossing, c.seconds),
    "latency": lambda c: (c.seconds, c.usd, c.bytes_crossing),
}


@dataclass(frozen=True)
class RegionCost:
    """What running the residual query in ``region`` would move, or why it may not run there.

    Attributes:
        region: the candidate region.
        allowed: whether every input's policy lets its fragments move there.
        reason: the planner's refusal when not allowed.
        bytes_crossing: estimated bytes of fragments whose silo is in another region.
        usd: estimated egress dollars of those fragments.
        seconds: estimated seconds of the slowest fragment (fragments run concurrently).
        plan: the plan for that region (``None`` when refused).
    """

    region: str
    allowed: bool
    reason: str = ""
    bytes_crossing: float = 0.0
    usd: float = 0.0
    seconds: float = 0.0
    plan: Plan | None = None


@dataclass(frozen=True)
class EnginePlacement:
    """The region chosen for a federated query's engine, with the reasons and the others."""

    region: str
    objective: str
    reasons: tuple[str, ...]
    costs: tuple[RegionCost, ...]

    @property
    def chosen(self) -> RegionCost:
        return next(c for c in self.costs if c.region == self.region)

    @property
    def bytes_crossing(self) -> float:
        return self.chosen.bytes_crossing

    @property
    def usd(self) -> float:
        return self.chosen.usd


def region_costs(
    sql: str,
    silos: Catalog | Mapping[str, SiloResource],
    estate: ComputeEstate,
    *,
    candidates: Sequence[str] | None = None,
    policy: Mapping[str, SiloPolicy | TablePolicy] | None = None,
) -> list[RegionCost]:
    """Plan ``sql`` with the engine in each candidate region (the estate's, by default) and
    price what each plan moves at the estate's link prices.

    Args:
        silos: a ``Catalog`` (planned from its snapshot, contacting no silo) or live silos.
    """
    from fed_assets.query import _with_policy
    from fed_assets.query.planner import plan
    from fed_assets.query.rules.enforce_residency import PolicyViolation

    live, stand_in = _silos_and_stand_ins(silos)
    out = []
    for region in candidates or estate.candidate_regions():
        priced = estate.priced_silos(_with_policy(live, policy), region)
        try:
            planned = plan(sql, stand_in(priced), engine_region=region)
        except PolicyViolation as err:
            out.append(RegionCost(region=region, allowed=False, reason=str(err)))
            continue
        destination = planned.fragments_go_to
        crossing = [f for f in planned.fragments if f.source_region != destination]
        out.append(
            RegionCost(
                region=region,
                allowed=True,
                bytes_crossing=sum(f.estimate.bytes for f in crossing),
                usd=sum(f.estimate.usd for f in crossing),
                seconds=max((f.estimate.seconds for f in planned.fragments), default=0.0),
                plan=planned,
            )
        )
    return out


def choose_engine_region(
    sql: str,
    silos: Catalog | Mapping[str, SiloResource],
    estate: ComputeEstate,
    *,
    objective: str = "money",
    candidates: Sequence[str] | None = None,
    policy: Mapping[str, SiloPolicy | TablePolicy] | None = None,
) -> EnginePlacement:
    """The candidate region where ``sql``'s residual query moves the fewest dollars (then bytes,
    then seconds; ``objective="latency"`` puts seconds first) among those every input's
    residency policy allows.

    Raises:
        PlacementRefused: no candidate region is allowed (each region's reason is listed).
    """
    if objective not in ENGINE_OBJECTIVES:
        from fed_assets.placement.errors import PoolConfigError

        raise PoolConfigError(
            "engine placement",
            f"objective {objective!r} is unknown",
            f"use one of {list(ENGINE_OBJECTIVES)}",
        )
    costs = region_costs(sql, silos, estate, candidates=candidates, policy=policy)
    allowed = sorted((c for c in costs if c.allowed), key=ENGINE_OBJECTIVES[objective])
    if not allowed:
        rejected = {c.region: c.reason for c in costs}
        raise PlacementRefused(
            "federated query engine",
            f"no candidate region {[c.region for c in costs]} is allowed by the inputs' "
            "residency policies",
            "add an engine region the policies allow (ComputeEstate.engine_regions), or "
            "aggregate in place; per region: "
            + " | ".join(f"{r}: {w}" for r, w in rejected.items()),
            constraint="residency",
            rejected=rejected,
        )
    best = allowed[0]
    reasons = [
        f"region {best.region}: {best.bytes_crossing:,.0f} bytes cross a region boundary, "
        f"${best.usd:.6f} egress, {best.seconds:.3f} s (estimated)"
    ]
    reasons += [
        f"not {c.region}: {c.bytes_crossing:,.0f} bytes, ${c.usd:.6f}, {c.seconds:.3f} s"
        for c in allowed[1:]
    ]
    reasons += [f"not {c.region}: refused by residency" for c in costs if not c.allowed]
    return EnginePlacement(
        region=best.region, objective=objective, reasons=tuple(reasons), costs=tuple(costs)
    )


def _silos_and_stand_ins(silos):
    """The live silo resources, and how to plan over them (through snapshot stand-ins when
    given a catalog, so planning contacts no silo)."""
    from fed_assets.catalog import Catalog

    if not isinstance(silos, Catalog):
        return dict(silos), lambda priced: priced
    from fed_assets.query.asset import SnapshotSilo, snapshot_tables

    snapshot = snapshot_tables(silos)
    return dict(silos.silos), lambda priced: {
        name: SnapshotSilo(silo, snapshot.get(name)) for name, silo in priced.items()
    }


def engine_at_run_time(
    sql: str,
    silos: Mapping[str, SiloResource],
    estate: ComputeEstate,
    *,
    policy: Mapping[str, SiloPolicy | TablePolicy] | None = None,
) -> tuple[EnginePlacement, dict[str, SiloResource]]:
    """A federated asset's run: the engine region chosen from the estate's figures now, and the
    live silos priced for that region (``estate.priced_silos``), so the planner's cost model
    prices every route from the same configuration the region was chosen by."""
    placed = choose_engine_region(sql, silos, estate, policy=policy)
    return placed, estate.priced_silos(silos, placed.region)


def engine_metadata(
    placed: EnginePlacement, priced: Mapping[str, SiloResource]
) -> dict[str, object]:
    """What a federated run records of its engine placement: the region, why, and the price and
    throughput of each silo's route to it that the cost model used."""
    import dagster as dg

    from fed_assets import metadata as md
    from fed_assets.query.cost import DEFAULT_MB_PER_S, KIND_MB_PER_S

    return {
        "placement/engine region": placed.region,
        "placement/engine reasons": dg.MetadataValue.md(
            "\n".join(f"- {r}" for r in placed.reasons)
        ),
        "placement/link prices": md.table(
            [
                {
                    "silo": name,
                    "route": f"{silo.region} → {placed.region}",
                    "usd per GB": 0.0 if silo.region == placed.region else silo.egress_usd_per_gb,
                    "MB/s": silo.scan_mb_per_s or KIND_MB_PER_S.get(silo.kind, DEFAULT_MB_PER_S),
                }
                for name, silo in sorted(priced.items())
            ]
        ),
    }
