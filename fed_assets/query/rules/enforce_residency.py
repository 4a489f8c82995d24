"""Residency: no fragment ships a column or row that its source's policy keeps in its region.

For each fragment, the base columns its result carries are traced through its projections
(``fed_assets.query.lineage``) and classified by what they reveal: a column read only inside a
value-hiding aggregate (count, sum, avg, stddev, ...) moves as an aggregate; one projected, used as
a group label, or read under an aggregate that returns a member's value (min, max, string_agg, ...)
moves raw. Groups that are single rows (a GROUP BY on a unique key or on a PII column) reveal rows,
so their aggregates count as raw too.

Each table of the fragment is then checked by ``fed_assets.residency.check_movement``, the one
piece that decides every movement (semi-join keys and shipped tables included). Under
``export: aggregates_only``, and for PII read inside aggregates, groups smaller than
``group_floor`` (``min_group_size``, at least 2) are suppressed by a ``HAVING COUNT(*) >= k``
added to the fragment. Anything refused raises ``PolicyViolation`` before a single
byte moves; each allowed fragment records the rule that let it.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.errors import PolicyViolation
from fed_assets.query.context import Cut, PlanContext
from fed_assets.query.lineage import Exported, exported_columns, trace
from fed_assets.residency import check_movement, group_floor

# A column counts as a unique key when its distinct values are at least this share of the rows:
# groups on it then hold under two rows on average, so an aggregate per group is mostly one row's.
UNIQUE_SHARE = 0.5

__all__ = ["PolicyViolation", "check_export", "enforce_residency", "key_movement"]


def enforce_residency(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Check every fragment against its tables' policies; record the allowing rule on each."""
    for cut in context.cuts.values():
        cut.rule = check_export(cut, context, context.engine_region)
    return expression


def check_export(cut: Cut, context: PlanContext, region: str | None, *, kind: str = "rows") -> str:
    """The rule that lets ``cut``'s result move to ``region`` (``None``: no region set), or a
    ``PolicyViolation``; tightens the fragment where a rule asks for it (small groups).

    Args:
        kind: ``"rows"`` for a result going to the engine, ``"shipped"`` for one registered in
            another silo (an aggregating fragment moves as ``"aggregates"`` either way).
    """
    silo = context.silos[cut.silo]
    if region is not None and region == silo.region:
        cut.kind = "aggregates" if _is_aggregate(cut.tree) else kind
        return f"same region ({silo.region})"
    exported = exported_columns(cut.tree)
    aggregate = _is_aggregate(cut.tree)
    read = {c.name.lower() for c in cut.tree.find_all(exp.Column)}
    rules, kinds = [], set()
    for key in sorted({t.name for t in cut.tree.find_all(exp.Table)}):
        actual = context.spelling[(cut.silo, key)][0]
        policy = silo.policy.for_table(actual)
        mine = [c for c in exported if c.table == key]
        # Aggregates of PII, and aggregates filtered on PII (WHERE email = ... counts one
        # person), leave only in groups of at least group_floor rows.
        guarded = policy.export == "aggregates_only" or bool(policy.pii_columns & read)
        one_row = guarded and aggregate and _single_row_groups(cut, context)
        # Group keys shape what leaves even when not projected: a GROUP BY on a PII column is
        # one group per person.
        raw = [c.column for c in mine if not c.aggregated or one_row] + _group_columns(cut, key)
        hidden = [c.column for c in mine if c.aggregated and not one_row]
        labels_only = all(_grouped(c, cut.tree) for c in mine if not c.aggregated)
        moves = "aggregates" if aggregate and labels_only and not one_row else kind
        route = check_movement(
            silo, actual, raw, kind=moves, destination_region=region, aggregated=hidden
        )
        if guarded and moves == "aggregates":
            _suppress_small_groups(cut.tree, group_floor(policy))
        kinds.add(moves)
        if route.rule != "export allowed":
            rules.append(route.rule)
    cut.kind = kinds.pop() if len(kinds) == 1 else kind
    return "; ".join(rules) or "export allowed"


def key_movement(cut: Cut, column: str, context: PlanContext, region: str) -> str:
    """The rule that lets ``cut``'s distinct ``column`` values go into a silo of ``region`` as
    semi-join keys, or a ``PolicyViolation`` (the planner then leaves the semi-join out)."""
    silo = context.silos[cut.silo]
    if region == silo.region:
        return f"same region ({silo.region})"
    tree = cut.tree
    projection = next((p for p in tree.expressions if p.alias_or_name == column), None)
    bases = trace(projection, tree, aggregated=False) if projection is not None else []
    tables = sorted({t.name for t in tree.find_all(exp.Table)})
    rules = []
    for key in tables:
        actual = context.spelling[(cut.silo, key)][0]
        columns = [b.column for b in bases if b.table == key]
        if columns or not bases:  # a computed key: checked against every table it may carry
            rules.append(
                check_movement(silo, actual, columns, kind="keys", destination_region=region).rule
            )
    return "; ".join(sorted(set(rules))) or "export allowed"


def _is_aggregate(tree: exp.Expression) -> bool:
    return isinstance(tree, exp.Select) and (
        bool(tree.args.get("group")) or all(p.find(exp.AggFunc) for p in tree.expressions)
    )


def _grouped(col: Exported, tree: exp.Expression) -> bool:
    """Whether the column is a GROUP BY key of the fragment (a group label, not a row)."""
    group = tree.args.get("group") if isinstance(tree, exp.Select) else None
    return bool(group) and any(c.name == col.column for c in group.find_all(exp.Column))


def _group_columns(cut: Cut, table: str) -> list[str]:
    """Base columns of ``table`` the fragment's GROUP BY reads."""
    group = cut.tree.args.get("group")
    if not group:
        return []
    bases = [b for g in group.expressions for b in trace(g, cut.tree, aggregated=False)]
    return [b.column for b in bases if b.table == table]


def _single_row_groups(cut: Cut, context: PlanContext) -> bool:
    """Whether the fragment groups by a PII column or a (nearly) unique column: its groups are
    then single rows, and what it aggregates per group is a row's value."""
    from fed_assets.query.cost import table_stats  # cost reads the context; keep imports light

    group = cut.tree.args.get("group")
    if not group:
        return False
    silo = context.silos[cut.silo]
    for expression in group.expressions:
        for base in trace(expression, cut.tree, aggregated=False):
            actual = context.spelling[(cut.silo, base.table)][0]
            if base.column.lower() in silo.policy.for_table(actual).pii_columns:
                return True
            stats = table_stats(silo, actual)
            col = next(
                (c for n, c in stats.columns.items() if n.lower() == base.column.lower()), None
            )
            if stats.rows and col is not None and (col.ndv or 0) >= UNIQUE_SHARE * stats.rows:
                return True
    return False


def _suppress_small_groups(tree: exp.Select, k: int) -> None:
    condition = exp.GTE(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(k))
    having = tree.args.get("having")
    if having is not None and any(c == condition for c in having.this.flatten()):
        return  # already suppressed (checked for another destination)
    tree.set("having", exp.Having(this=exp.and_(having.this, condition) if having else condition))
