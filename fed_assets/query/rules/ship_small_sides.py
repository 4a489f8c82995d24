"""Ship the small sides into the silo that holds the big one, and run the rest of the query there.

When every fragment but those of one silo is small, and that silo's engine accepts tables shipped
in (``temp_tables``: the DuckDB-engine silos register Arrow tables), the residual query runs inside
that silo: the small fragments' results are registered there, the big fragments become CTEs of the
same query, and only the query's result leaves the silo. The big side's rows then never move,
and the silo's own optimizer orders the joins over the real data.

It is chosen only when the cost model says it is cheaper than pulling the big side out — in
seconds by default, in dollars of egress with ``objective="money"`` — and only when every
shipped fragment's policy lets its data go to the host silo's region (the same check the engine's
region gets; a refusal here just keeps the ordinary plan).
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.query.context import PlanContext
from fed_assets.query.cost import (
    estimate_fragment,
    estimate_result_bytes,
    estimate_rows,
    move_cost,
)
from fed_assets.query.rules.enforce_residency import PolicyViolation, check_export

# Largest estimated result a fragment may have to be shipped: registering an Arrow table of this
# many rows costs milliseconds, and a key this many rows long still builds a hash table in memory.
SHIP_MAX_ROWS = 100_000
# Smallest estimated result the host's fragments must reach for shipping to be considered:
# below it, pulling them out takes no longer than registering the shipped tables.
SHIP_MIN_HOSTED_ROWS = 10_000


def ship_small_sides(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Pick the silo, if any, that runs the residual query over shipped-in small fragments."""
    context.ship_to = None
    if len({cut.silo for cut in context.cuts.values()}) < 2:
        return expression
    if any(t.name not in context.cuts for t in expression.find_all(exp.Table)):
        return expression  # the residual reads something other than fragments
    estimates = {
        fid: estimate_fragment(cut, context, reduced=fid) for fid, cut in context.cuts.items()
    }
    unreduced = {fid: estimate_fragment(cut, context) for fid, cut in context.cuts.items()}
    # Rows of the tables each fragment reads: what the host would scan (a fragment that
    # aggregates returns few rows but still reads its tables).
    scanned = {
        fid: max(
            estimate_fragment(cut, context).rows,
            sum(estimate_rows(t, cut.silo, context) for t in cut.tree.find_all(exp.Table)),
        )
        for fid, cut in context.cuts.items()
    }
    ordinary = sum(
        move_cost(
            estimates[fid].bytes, context.silos[cut.silo], context.engine_region, context.objective
        )
        for fid, cut in context.cuts.items()
    )
    best: tuple[float, str] | None = None  # (saving, host)
    for host in sorted({cut.silo for cut in context.cuts.values()}):
        if not context.silos[host].supports("temp_tables"):
            continue
        hosted = [fid for fid, cut in context.cuts.items() if cut.silo == host]
        shipped = [fid for fid in context.cuts if fid not in hosted]
        if sum(scanned[f] for f in hosted) < SHIP_MIN_HOSTED_ROWS:
            continue
        # A shipped fragment whose keys were to come from the host's fragments (which then run
        # only inside the host's query) is shipped unfiltered: judged by its own estimate (TPC-H
        # Q08 shipped all 6 M lineitem rows, estimated at 42,562 after the part keys).
        unkeyed = {
            sj.target
            for sj in context.semi_joins
            if context.cuts[sj.source].silo == host and sj.target in shipped
        }
        sizes = {f: unreduced[f] if f in unkeyed else estimates[f] for f in context.cuts}
        if any(sizes[f].rows > SHIP_MAX_ROWS for f in shipped):
            continue
        saving = ordinary - _shipped_cost(expression, host, shipped, sizes, context)
        if saving <= 0 or not _may_ship(shipped, host, context):
            continue
        if best is None or saving > best[0]:
            best = (saving, host)
    if best is not None:
        host = best[1]
        context.ship_to = host
        region = context.silos[host].region
        for cut in context.cuts.values():
            if cut.silo != host:
                rule = check_export(cut, context, region, kind="shipped")
                cut.rule = f"{rule}; shipped into silo '{host}'"
                cut.kind = "shipped"
        # Keys from the host's fragments would come from fragments that no longer run alone.
        context.semi_joins = [
            sj for sj in context.semi_joins if context.cuts[sj.source].silo != host
        ]
    return expression


def _shipped_cost(residual, host: str, shipped: list[str], estimates, context) -> float:
    """Seconds or dollars (``context.objective``) of the shipped plan: the small sides to the
    host's region, then the query's result from the host to the engine."""
    region = context.silos[host].region
    cost = sum(
        move_cost(
            estimates[f].bytes, context.silos[context.cuts[f].silo], region, context.objective
        )
        for f in shipped
    )
    result = estimate_result_bytes(residual, context)
    return cost + move_cost(result, context.silos[host], context.engine_region, context.objective)


def _may_ship(shipped: list[str], host: str, context: PlanContext) -> bool:
    """Whether every shipped fragment may move to the host silo's region."""
    region = context.silos[host].region
    for fid in shipped:
        cut = context.cuts[fid]
        saved, kind = cut.tree.copy(), cut.kind
        try:
            check_export(cut, context, region, kind="shipped")
        except PolicyViolation:
            return False
        finally:
            cut.tree = saved  # the check may tighten the tree; the ordinary plan keeps its own
            cut.kind = kind
    return True
