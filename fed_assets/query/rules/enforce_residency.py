"""Residency: no fragment ships a column or row that its source's policy keeps in its region.

For each fragment, the base columns its result carries are traced through its projections. Data
staying in the silo's own region is always allowed. Leaving it:

- ``export: none`` refuses;
- PII columns may leave only inside an aggregate;
- ``export: aggregates_only`` needs the fragment to aggregate in place (which the planner already
  does where the whole aggregate fits in the silo); groups smaller than ``min_group_size`` are
  suppressed by a ``HAVING COUNT(*) >= k`` added to the fragment;
- ``allowed_regions``, when set, must contain the engine's region.

Anything else is refused before a single byte moves, with a ``PolicyViolation`` that names the
table, column, rule and what would satisfy it. Each allowed fragment records the rule that let it.
"""

from __future__ import annotations

from sqlglot import exp

from fed_assets.errors import FedAssetsError
from fed_assets.query.context import Cut, PlanContext
from fed_assets.query.lineage import Exported, exported_columns


class PolicyViolation(FedAssetsError):
    """A query would move data that a residency or export policy keeps in place."""


def enforce_residency(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Check every fragment against its tables' policies; record the allowing rule on each."""
    for cut in context.cuts.values():
        cut.rule = check_export(cut, context, context.engine_region)
    return expression


def check_export(cut: Cut, context: PlanContext, region: str | None) -> str:
    """The rule that lets ``cut``'s result move to ``region`` (``None``: no region set), or a
    ``PolicyViolation``; tightens the fragment where a rule asks for it (small groups)."""
    silo = context.silos[cut.silo]
    destination = region or "the embedded engine (no region set)"
    if region is not None and region == silo.region:
        return f"same region ({silo.region})"
    exported = exported_columns(cut.tree)
    tables = {t.name for t in cut.tree.find_all(exp.Table)}
    rules = []
    aggregate = _is_aggregate(cut.tree)
    for key in sorted(tables):
        actual = context.spelling[(cut.silo, key)][0]
        policy = silo.policy.for_table(actual)
        where = f"silo '{silo.name}' (region {silo.region}), table '{actual}'"
        if policy.export == "none":
            raise PolicyViolation(
                where,
                f"rule export=none: nothing may leave the silo, but the plan moves it to {destination}",
                f"run the query in region {silo.region} (engine_region='{silo.region}') or drop the "
                "table from it",
            )
        if policy.allowed_regions and region not in policy.allowed_regions:
            raise PolicyViolation(
                where,
                f"rule allowed_regions={list(policy.allowed_regions)}: the plan moves its data to "
                f"{destination}",
                f"run the query in one of {list(policy.allowed_regions)} "
                f"(engine_region='{policy.allowed_regions[0]}')",
            )
        for col in exported:
            if col.table == key and col.column in policy.pii_columns and not col.aggregated:
                raise PolicyViolation(
                    f"{where}, column '{col.column}'",
                    f"rule pii: personal data never leaves region {silo.region}, but the plan "
                    f"ships the column to {destination}",
                    "drop the column from the query, use it only inside an aggregate, or join and "
                    f"filter on it within silo '{silo.name}'",
                )
        if policy.export == "aggregates_only":
            raw = [
                c
                for c in exported
                if c.table == key and not c.aggregated and not _grouped(c, cut.tree)
            ]
            if not aggregate or raw:
                column = f", column '{raw[0].column}'" if raw else ""
                raise PolicyViolation(
                    f"{where}{column}",
                    "rule export=aggregates_only: only aggregates may leave the silo, but the "
                    "plan ships rows",
                    f"aggregate the table in a subquery that reads only silo '{silo.name}' "
                    f"(GROUP BY ...), with groups of at least {policy.min_group_size} rows",
                )
            if policy.min_group_size > 1:
                _suppress_small_groups(cut.tree, policy.min_group_size)
            rules.append(f"{actual}: aggregates only, groups ≥ {policy.min_group_size}")
        elif policy.pii_columns & {c.column for c in exported if c.table == key}:
            rules.append(f"{actual}: PII only inside aggregates")
    return "; ".join(rules) or "export allowed"


def _is_aggregate(tree: exp.Expression) -> bool:
    return isinstance(tree, exp.Select) and (
        bool(tree.args.get("group")) or all(p.find(exp.AggFunc) for p in tree.expressions)
    )


def _grouped(col: Exported, tree: exp.Expression) -> bool:
    """Whether the column is a GROUP BY key of the fragment (a group label, not a row)."""
    group = tree.args.get("group") if isinstance(tree, exp.Select) else None
    return bool(group) and any(c.name == col.column for c in group.find_all(exp.Column))


def _suppress_small_groups(tree: exp.Select, k: int) -> None:
    condition = exp.GTE(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(k))
    having = tree.args.get("having")
    if having is not None and any(c == condition for c in having.this.flatten()):
        return  # already suppressed (checked for another destination)
    tree.set("having", exp.Having(this=exp.and_(having.this, condition) if having else condition))
