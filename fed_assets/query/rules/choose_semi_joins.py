"""Semi-join reduction: send a small fragment's join keys into a big fragment's silo as a filter.

Chosen from estimates here, and only where the source's residency policy lets its keys go into
the target silo's region (``key_movement``; otherwise the join runs above, over what may leave);
applied at run time, when the small side's actual distinct keys are
known (``execute``), and skipped there if they turn out to be too many.

A fragment may take keys on several of its join columns (lineitem ⋈ orders filtered by both the
suppliers and the customers it joins), and a fragment that takes keys may give its own: nation →
supplier → lineitem is a chain, so a filter on a 25-row table in one silo shrinks a 6-million-row
table in another. Choosing runs in rounds: a target's estimate shrinks by the share of its
source's key table that the source keeps, and may make it a source in the next round. An edge that
would close a loop is left out.

A source whose rows pass a HAVING (TPC-H Q18's orders with more than 300 units) has an estimate
no statistic supports: the filter is on an aggregate, whose distribution nothing records (Q18:
2 M estimated, 57 actual). Such a source is judged as if it held at most ``SEMIJOIN_MAX_KEYS``
rows; the executor, with the actual keys in hand, still skips the semi-join when they are many.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.errors import PolicyViolation
from fed_assets.query.context import PlanContext
from fed_assets.query.cost import base_distinct, base_rows, estimate_fragment
from fed_assets.query.model import SemiJoin
from fed_assets.query.rules.enforce_residency import key_movement
from fed_assets.query.tree import entries, is_inner, join_conjuncts

# Largest key list sent into a silo: an IN list this long still parses and plans in
# milliseconds in PostgreSQL and DuckDB.
SEMIJOIN_MAX_KEYS = 50_000
# Only worth it when the target is expected to be this many times the source.
SEMIJOIN_MIN_RATIO = 4.0
# Key filters one fragment takes at most: each further one waits for one more fragment.
SEMIJOIN_MAX_PER_TARGET = 3
# At run time, a source holding at least this share of its key column's distinct values filters
# at most a tenth of the target (joined on a foreign key, every target row finds its key): sending
# the keys and making the target wait for them costs more than it saves. (At planning time a
# source that is a whole, unfiltered table is never a key source: TPC-H Q08 sent all 10,000
# suppliers' keys into lineitem.)
SEMIJOIN_MAX_DOMAIN_SHARE = 0.9
# Rounds of choosing: a fragment filtered in one round may filter another in the next
# (nation → supplier → lineitem is two hops).
SEMIJOIN_MAX_HOPS = 3


def choose_semi_joins(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """For each large fragment and each of its inner-join columns, pick the smallest fragment
    joined on that column to filter it by."""
    base = {fid: estimate_fragment(cut, context).rows for fid, cut in context.cuts.items()}
    pairs = [
        pair for select in expression.find_all(exp.Select) for pair in _key_pairs(select, context)
    ]
    estimates = dict(base)
    per_target: dict[str, list[SemiJoin]] = {}
    for _ in range(SEMIJOIN_MAX_HOPS):
        added = False
        candidates = _choose(pairs, base, estimates, context).values()
        for sj in sorted(candidates, key=lambda sj: estimates[sj.source]):
            taken = per_target.setdefault(sj.target, [])
            if (
                len(taken) < SEMIJOIN_MAX_PER_TARGET
                and all(t.target_column != sj.target_column for t in taken)
                and not _reaches(sj.target, sj.source, per_target)
            ):
                taken.append(sj)
                added = True
        if not added:
            break
        estimates = _reduced(base, per_target, estimates, context)
    context.semi_joins = [sj for taken in per_target.values() for sj in taken]
    context.reduced_rows = _reduced(base, per_target, estimates, context)
    return expression


def _reaches(start: str, goal: str, per_target: dict[str, list[SemiJoin]]) -> bool:
    """Whether keys already flow from ``start`` to ``goal`` (an edge goal → start would loop)."""
    frontier, seen = [start], set()
    while frontier:
        node = frontier.pop()
        if node == goal:
            return True
        seen.add(node)
        frontier += [
            t
            for t, joins in per_target.items()
            for sj in joins
            if sj.source == node and t not in seen
        ]
    return False


def _choose(pairs, base: dict[str, float], estimates: dict[str, float], context) -> dict:
    """(target, target column) → the semi-join from the smallest source worth it: sources are
    judged by their reduced estimates, targets by their own (before any keys arrive)."""
    chosen: dict[tuple[str, str], SemiJoin] = {}
    for a, b in pairs:
        for (s_id, s_col), (b_id, b_col) in ((a, b), (b, a)):
            s_rows, b_rows = estimates[s_id], base[b_id]
            if _filtered_on_aggregate(context.cuts[s_id].tree):
                s_rows = min(s_rows, SEMIJOIN_MAX_KEYS)
            if s_rows > SEMIJOIN_MAX_KEYS or b_rows < max(SEMIJOIN_MIN_RATIO * s_rows, 1):
                continue
            if s_rows >= base[s_id] and _whole_table(context.cuts[s_id].tree):
                continue  # the source is a whole table: its keys are all there are, no filter
            target = context.silos[context.cuts[b_id].silo]
            if not target.supports("filter"):
                continue
            current = chosen.get((b_id, b_col))
            if current is not None and estimates[current.source] <= s_rows:
                continue
            try:  # keys the source's policy keeps out of the target's region: join above
                rule = key_movement(context.cuts[s_id], s_col, context, target.region)
            except PolicyViolation:
                continue
            chosen[(b_id, b_col)] = SemiJoin(
                s_id,
                s_col,
                b_id,
                b_col,
                rule,
                source_rows=s_rows,
                target_rows=b_rows,
                source_domain=base_distinct(s_id, s_col, context),
            )
    return chosen


def _whole_table(tree: exp.Expression) -> bool:
    """Whether a fragment reads one table with no filter, grouping or limit: all its rows."""
    tables = list(tree.find_all(exp.Table))
    return (
        len(tables) == 1
        and not any(
            select.args.get(part)
            for select in tree.find_all(exp.Select)
            for part in ("where", "having", "group", "limit", "distinct")
        )
        and not tree.find(exp.Join)
    )


def _filtered_on_aggregate(tree: exp.Expression) -> bool:
    """Whether the fragment's rows pass a HAVING (an estimate only the run can tell)."""
    return any(select.args.get("having") for select in tree.find_all(exp.Select))


def _reduced(base: dict[str, float], per_target, estimates: dict[str, float], context) -> dict:
    """Estimates once each target keeps only the keys its sources let through: a source that
    keeps a tenth of its key column's table keeps about a tenth of the target's rows."""
    out = dict(base)
    for target, joins in per_target.items():
        for sj in joins:
            table_rows = base_rows(sj.source, sj.source_column, context)
            if table_rows:
                out[target] = max(1.0, out[target] * min(1.0, estimates[sj.source] / table_rows))
    return out


def _key_pairs(
    select: exp.Select, context: PlanContext
) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """((fragment, column), (fragment, column)) pairs whose values must match for a row of
    ``select`` to survive: inner equi-joins between placeholders, and ``x IN (SELECT * FROM
    placeholder)`` in WHERE (either side's keys may filter the other)."""
    aliases = _inner_placeholders(select, context)
    conditions = join_conjuncts(select)
    pairs = []
    for cond in conditions:
        if isinstance(cond, exp.EQ) and isinstance(cond.left, exp.Column):
            a, b = cond.left, cond.right
            if (
                isinstance(b, exp.Column)
                and a.table in aliases
                and b.table in aliases
                and a.table != b.table
            ):
                pairs.append(((aliases[a.table], a.name), (aliases[b.table], b.name)))
        elif isinstance(cond, exp.In) and isinstance(cond.this, exp.Column):
            inner = _placeholder_column(cond.args.get("query"), context)
            if inner is not None and cond.this.table in aliases:
                pairs.append(((aliases[cond.this.table], cond.this.name), inner))
    return pairs


def _placeholder_column(
    query: exp.Expression | None, context: PlanContext
) -> tuple[str, str] | None:
    """(fragment, column) when ``query`` is ``SELECT * FROM <placeholder>`` of one column."""
    select = query.this if isinstance(query, exp.Subquery) else query
    if not isinstance(select, exp.Select) or select.args.get("joins") or select.args.get("where"):
        return None
    from_ = select.args.get("from_")
    source = from_.this if from_ else None
    if not isinstance(source, exp.Table) or source.name not in context.cuts:
        return None
    if len(select.expressions) != 1 or not isinstance(select.expressions[0], exp.Star):
        return None
    names = context.cuts[source.name].tree.named_selects
    return (source.name, names[0]) if len(names) == 1 else None


def _inner_placeholders(select: exp.Select, context: PlanContext) -> dict[str, str]:
    """Alias → fragment id of the placeholders that ``select`` joins innerly."""
    return {
        source.alias_or_name: source.name
        for source, join in entries(select)
        if isinstance(source, exp.Table) and source.name in context.cuts and is_inner(join)
    }
