"""Semi-join reduction: send a small fragment's join keys into a big fragment's silo as a filter.

Chosen from estimates here; applied at run time, when the small side's actual distinct keys are
known (``execute``), and skipped there if they turn out to be too many.

A fragment may take keys on several of its join columns (lineitem ⋈ orders filtered by both the
suppliers and the customers it joins), and a fragment that takes keys may give its own: nation →
supplier → lineitem is a chain, so a filter on a 25-row table in one silo shrinks a 6-million-row
table in another. Every edge goes from a smaller estimate to one at least ``SEMIJOIN_MIN_RATIO``
times larger, so the chains cannot loop.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.query.context import PlanContext
from fed_assets.query.cost import estimate_fragment
from fed_assets.query.model import SemiJoin

# Largest key list sent into a silo: an IN list this long still parses and plans in
# milliseconds in PostgreSQL and DuckDB.
SEMIJOIN_MAX_KEYS = 50_000
# Only worth it when the target is expected to be this many times the source.
SEMIJOIN_MIN_RATIO = 4.0
# Key filters one fragment takes at most: each further one waits for one more fragment.
SEMIJOIN_MAX_PER_TARGET = 3


def choose_semi_joins(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """For each large fragment and each of its inner-join columns, pick the smallest fragment
    joined on that column to filter it by."""
    estimates = {fid: estimate_fragment(cut, context).rows for fid, cut in context.cuts.items()}
    chosen: dict[tuple[str, str], SemiJoin] = {}  # (target, target column) → semi-join
    for select in expression.find_all(exp.Select):
        aliases = _inner_placeholders(select, context)
        for a, b in _equi_conditions(select):
            if a.table not in aliases or b.table not in aliases or a.table == b.table:
                continue
            for small, big in ((a, b), (b, a)):
                s_id, b_id = aliases[small.table], aliases[big.table]
                s_rows, b_rows = estimates[s_id], estimates[b_id]
                if s_rows > SEMIJOIN_MAX_KEYS or b_rows < max(SEMIJOIN_MIN_RATIO * s_rows, 1):
                    continue
                if not context.silos[context.cuts[b_id].silo].supports("filter"):
                    continue
                current = chosen.get((b_id, big.name))
                if current is None or estimates[current.source] > s_rows:
                    chosen[(b_id, big.name)] = SemiJoin(s_id, small.name, b_id, big.name)
    per_target: dict[str, list[SemiJoin]] = {}
    for sj in sorted(chosen.values(), key=lambda sj: estimates[sj.source]):
        taken = per_target.setdefault(sj.target, [])
        if len(taken) < SEMIJOIN_MAX_PER_TARGET:
            taken.append(sj)
    context.semi_joins = [sj for taken in per_target.values() for sj in taken]
    return expression


def _equi_conditions(select: exp.Select) -> list[tuple[exp.Column, exp.Column]]:
    """``a = b`` column pairs from ``select``'s WHERE and inner-join ON conditions."""
    where = select.args.get("where")
    conditions = (
        list(where.this.flatten())
        if where and isinstance(where.this, exp.And)
        else ([where.this] if where else [])
    )
    for join in select.args.get("joins") or []:
        on = join.args.get("on")
        if on is not None and not join.args.get("side"):
            conditions += list(on.flatten()) if isinstance(on, exp.And) else [on]
    return [
        (cond.left, cond.right)
        for cond in conditions
        if isinstance(cond, exp.EQ)
        and isinstance(cond.left, exp.Column)
        and isinstance(cond.right, exp.Column)
    ]


def _inner_placeholders(select: exp.Select, context: PlanContext) -> dict[str, str]:
    """Alias → fragment id of the placeholders that ``select`` joins innerly."""
    from_ = select.args.get("from_")
    entries = ([(from_.this, None)] if from_ else []) + [
        (j.this, j) for j in select.args.get("joins") or []
    ]
    out = {}
    for source, join in entries:
        if not isinstance(source, exp.Table) or source.name not in context.cuts:
            continue
        if join is not None and (
            join.args.get("side")
            or (join.args.get("kind") or "").upper() not in ("", "INNER", "CROSS")
        ):
            continue
        out[source.alias_or_name] = source.name
    return out
