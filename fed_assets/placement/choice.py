"""``choose``: the cheapest pool that fits memory, deadline, budget and the inputs' residency.

Every pool is estimated; a pool is rejected for the first constraint it fails (``CONSTRAINTS``
order: residency, memory, deadline, budget) and the rest are ranked by the objective. The result
says what it decided and why (``Placement.reasons``), or refuses naming the constraint no pool
meets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fed_assets.placement.errors import PlacementRefused
from fed_assets.placement.estimate import RunEstimate, Workload, estimate_training
from fed_assets.placement.history import Calibration
from fed_assets.placement.pools import ComputePool
from fed_assets.silo import SiloResource

# What a placement can minimise: dollars, seconds, or kilograms of CO₂e.
OBJECTIVES = {
    "money": lambda e: (e.footprint.usd, e.seconds),
    "time": lambda e: (e.seconds, e.footprint.usd),
    "co2": lambda e: (e.footprint.co2_kg, e.footprint.usd),
}


# A training input: a silo, (silo, table), or (silo, table, columns read).
Input = SiloResource | tuple[SiloResource, str] | tuple[SiloResource, str, Sequence[str]]


class Estate(Protocol):
    """What ``choose`` needs of the compute resource (``resources.compute.ComputeEstate``)."""

    def all_pools(self) -> list[ComputePool]: ...


@dataclass(frozen=True)
class Placement:
    """Where a run goes and why.

    Attributes:
        pool: the chosen pool.
        estimate: its estimate there.
        objective: what was minimised.
        reasons: why this pool, in sentences (constraints met, what it beat).
        rejected: pool name → why it was not chosen.
        alternatives: the estimates of the other pools that met every constraint.
    """

    pool: ComputePool
    estimate: RunEstimate
    objective: str
    reasons: tuple[str, ...]
    rejected: dict[str, str] = field(default_factory=dict)
    alternatives: tuple[RunEstimate, ...] = ()

    @property
    def tags(self) -> dict[str, str]:
        """Dagster run tags that put the run on the pool (see ``ComputePool.tags``)."""
        return self.pool.tags()


def residency_allows(region: str, inputs: Sequence[Input]) -> str | None:
    """Why ``region`` may not receive the inputs' rows, or ``None`` when every input allows it.

    An input is a silo (its silo-wide policy), ``(silo, table)`` (the table's policy) or
    ``(silo, table, columns)`` (PII columns checked too). Each is checked as training rows moving
    to ``region`` by ``fed_assets.residency.check_movement``, the one rule every movement passes:
    data staying in its silo's region always may; ``export: none`` and ``aggregates_only`` keep
    rows in place; ``allowed_regions``, when set, must contain ``region``.
    """
    from fed_assets.errors import PolicyViolation
    from fed_assets.residency import check_movement

    for item in inputs:
        # a whole silo is checked under its silo-wide policy, as table '*'
        silo, table, columns = (
            (tuple(item) + ("*", ()))[:3] if isinstance(item, tuple) else (item, "*", ())
        )
        try:
            check_movement(silo, table, columns, kind="rows", destination_region=region)
        except PolicyViolation as err:
            return f"{err.what}: {err.reason}"
    return None


def choose(
    workload: Workload,
    estate: Estate | Sequence[ComputePool],
    *,
    objective: str = "money",
    deadline_s: float | None = None,
    budget_usd: float | None = None,
    inputs: Sequence[Input] = (),
    utilisation: Callable[[ComputePool], float | Calibration | None]
    | Mapping[str, float | Calibration]
    | None = None,
    estimator: Callable[..., RunEstimate] = estimate_training,
) -> Placement:
    """The pool that minimises ``objective`` among those meeting every constraint.

    Args:
        workload: what runs.
        estate: the compute resource, or its pools.
        objective: ``"money"``, ``"time"`` or ``"co2"``.
        deadline_s: the run must finish within this many seconds.
        budget_usd: the run may cost at most this much.
        inputs: the silos (or ``(silo, table)``) whose rows the run reads; their residency
            policies must allow the pool's region.
        utilisation: per-pool calibration (pool name → a share of peak or a ``Calibration``,
            or a function of the pool; ``None`` for a pool keeps its configured figure).
        estimator: ``estimate_training`` (default) or ``estimate_inference``.

    Raises:
        PlacementRefused: the estate is empty, or no pool meets the constraints (the message
            names the constraint and each pool's reason).
        PoolConfigError: an unknown objective.
    """
    from fed_assets.placement.errors import PoolConfigError

    if objective not in OBJECTIVES:
        raise PoolConfigError(
            "placement", f"objective {objective!r} is unknown", f"use one of {list(OBJECTIVES)}"
        )
    pools = list(estate) if isinstance(estate, Sequence) else estate.all_pools()
    what = f"{estimator.__name__.removeprefix('estimate_')} of {workload.params:,} parameters"
    if not pools:
        raise PlacementRefused(
            what,
            "the compute estate has no pool",
            "add at least one pool to the estate (or keep detect_local on)",
            constraint="empty",
            rejected={},
        )
    rejected: dict[str, str] = {}
    failed: dict[str, str] = {}
    fitting: list[tuple[ComputePool, RunEstimate]] = []
    for pool in pools:
        fitted = _utilisation_for(pool, utilisation)
        share, overhead = (
            (fitted.utilisation_at(workload.d_model), fitted.step_overhead_s)
            if isinstance(fitted, Calibration)
            else (fitted, 0.0)
        )
        if workload.dtype not in pool.peak_flops:
            rejected[pool.name] = f"no {workload.dtype} figure (has {sorted(pool.peak_flops)})"
            failed[pool.name] = "dtype"
            continue
        estimate = estimator(workload, pool, utilisation=share, step_overhead_s=overhead)
        reason, constraint = _first_failure(pool, estimate, inputs, deadline_s, budget_usd)
        if reason is None:
            fitting.append((pool, estimate))
        else:
            rejected[pool.name] = reason
            failed[pool.name] = constraint
    if not fitting:
        # pools without a figure for the dtype are not candidates; the others say what binds
        constraints = {c for c in failed.values() if c != "dtype"} or {"dtype"}
        constraint = constraints.pop() if len(constraints) == 1 else "several"
        listed = "; ".join(f"{name}: {why}" for name, why in rejected.items())
        raise PlacementRefused(
            what,
            f"no pool meets the {constraint} constraint"
            if constraint != "several"
            else "no pool meets every constraint",
            f"{_fix(constraint)} (pools: {listed})",
            constraint=constraint,
            rejected=rejected,
        )
    key = OBJECTIVES[objective]
    fitting.sort(key=lambda pe: key(pe[1]))
    pool, best = fitting[0]
    reasons = [
        f"cheapest by {objective} of {len(fitting)} pool(s) that fit: " + _describe(best),
        f"fits memory: {best.memory.gb:.2f} GB of {pool.memory_gb:g} GB per device",
    ]
    if deadline_s is not None:
        reasons.append(f"meets the deadline: {best.seconds:,.0f} s ≤ {deadline_s:,.0f} s")
    if budget_usd is not None:
        reasons.append(f"within budget: ${best.footprint.usd:,.2f} ≤ ${budget_usd:,.2f}")
    if inputs:
        reasons.append(f"region {pool.region} is allowed by every input's residency policy")
    if len(fitting) > 1:
        runner_up = fitting[1][1]
        reasons.append(f"next best: {runner_up.pool} ({_describe(runner_up)})")
    return Placement(
        pool=pool,
        estimate=best,
        objective=objective,
        reasons=tuple(reasons),
        rejected=rejected,
        alternatives=tuple(e for _, e in fitting[1:]),
    )


def _first_failure(
    pool: ComputePool,
    estimate: RunEstimate,
    inputs: Sequence[Input],
    deadline_s: float | None,
    budget_usd: float | None,
) -> tuple[str | None, str]:
    why = residency_allows(pool.region, inputs)
    if why is not None:
        return why, "residency"
    if estimate.memory.gb > pool.memory_gb:
        return (
            f"needs {estimate.memory.gb:,.1f} GB per device, has {pool.memory_gb:g} GB",
            "memory",
        )
    if deadline_s is not None and estimate.seconds > deadline_s:
        return f"takes {estimate.seconds:,.0f} s, deadline {deadline_s:,.0f} s", "deadline"
    if budget_usd is not None and estimate.footprint.usd > budget_usd:
        return f"costs ${estimate.footprint.usd:,.2f}, budget ${budget_usd:,.2f}", "budget"
    return None, ""


def _fix(constraint: str) -> str:
    return {
        "residency": "add a pool in a region the inputs' policies allow, or train where the "
        "data lives (federated)",
        "memory": "use LoRA, a smaller batch or sequence length, 16-bit weights, or add a pool "
        "with more memory",
        "deadline": "extend the deadline, train on fewer tokens, or add a faster pool",
        "budget": "raise the budget, train on fewer tokens, or add a cheaper pool",
        "dtype": "run in a dtype the pools quote peak FLOP/s for, or add that figure",
    }.get(constraint, "relax one of the constraints named for each pool")


def _describe(estimate: RunEstimate) -> str:
    f = estimate.footprint
    return (
        f"{f.seconds:,.1f} s, ${f.usd:,.4f}, {f.kwh:,.4f} kWh, {f.co2_kg * 1000:,.1f} g CO₂e, "
        f"{f.water_l:,.3f} L water"
    )


def _utilisation_for(pool: ComputePool, utilisation) -> float | Calibration | None:
    if utilisation is None:
        return None
    if isinstance(utilisation, Mapping):
        return utilisation.get(pool.name)
    return utilisation(pool)
