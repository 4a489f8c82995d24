"""Run-time decisions: what the executor re-decides once fragments' actual sizes are known.

The planner chooses semi-joins from estimates; the executor runs each key source first and,
with its real distinct keys in hand, sends them into the target only when that still pays:

- at most ``SEMIJOIN_MAX_KEYS`` keys (a longer list costs more to send and match than it saves);
- fewer than the target's expected rows over ``SEMIJOIN_MIN_RATIO`` (the planner's own test, now
  on actual keys: a "small" side that turned out as big as the target filters almost nothing);
- fewer than ``SEMIJOIN_MAX_DOMAIN_SHARE`` of the distinct values the source column's table
  holds (a source that kept nearly every key filters nearly nothing).

A residual query that joins ``MATERIALISE_MIN_INPUTS`` fragments or more gets them as DuckDB
tables, not registered Arrow scans, when together they hold at most ``MATERIALISE_MAX_ROWS``
(``materialise``): DuckDB knows an Arrow scan's row count but none of its column statistics, and
without distinct counts its join order can build a huge intermediate (TPC-H Q05 over Arrow inputs
made 18 M rows where tables took 0.13 s); copying the inputs costs about 40 ms a million rows.

A query that one silo ran whole leaves a residual that only copies that fragment
(``SELECT a, b FROM __f0``): its rows are the answer as they are (``pass_through``), with no
embedded-engine round trip.

Each decision is kept as one line of text for ``QueryResult.decisions``, EXPLAIN and the asset
metadata.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp

from fed_assets.query.model import Plan, SemiJoin
from fed_assets.query.rules.choose_semi_joins import (
    SEMIJOIN_MAX_DOMAIN_SHARE,
    SEMIJOIN_MAX_KEYS,
    SEMIJOIN_MIN_RATIO,
)

# Inputs from which on the residual's join order depends on their sizes: with two, DuckDB builds
# on the smaller side from row counts alone.
MATERIALISE_MIN_INPUTS = 3
# Rows of all inputs together up to which copying them into tables costs less than a poor join
# order risks (about 0.4 s of copying on 2 cores at this size).
MATERIALISE_MAX_ROWS = 10_000_000


def semi_join_keys(
    joins: list[SemiJoin], tables: Mapping[str, pa.Table]
) -> tuple[dict[str, pa.Array], list[str]]:
    """Target column → the distinct non-null keys its sources produced, for the keys worth
    sending; and a line per semi-join saying what was decided and why."""
    keys: dict[str, pa.Array] = {}
    decisions = []
    for sj in joins:
        values = pc.unique(tables[sj.source][sj.source_column]).drop_null()
        what = f"semi-join {sj.source}.{sj.source_column} → {sj.target}.{sj.target_column}"
        if len(values) > SEMIJOIN_MAX_KEYS:
            decisions.append(
                f"{what}: skipped, {len(values):,} distinct keys > {SEMIJOIN_MAX_KEYS:,} "
                "(the join above applies them)"
            )
        elif sj.target_rows is not None and len(values) * SEMIJOIN_MIN_RATIO > sj.target_rows:
            decisions.append(
                f"{what}: skipped, {len(values):,} distinct keys against about "
                f"{sj.target_rows:,.0f} target rows filter too little (planned for "
                f"{sj.source_rows or 0:,.0f} keys)"
            )
        elif sj.source_domain and len(values) >= SEMIJOIN_MAX_DOMAIN_SHARE * sj.source_domain:
            decisions.append(
                f"{what}: skipped, {len(values):,} distinct keys are most of the "
                f"{sj.source_domain:,.0f} the source's table holds: they filter almost nothing"
            )
        else:
            keys[sj.target_column] = values
            decisions.append(
                f"{what}: sent {len(values):,} keys (planned for about {sj.source_rows or 0:,.0f})"
            )
    return keys, decisions


def pass_through(plan: Plan, tables: Mapping[str, pa.Table]) -> pa.Table | None:
    """The one fragment's table when the residual query selects exactly its columns, under the
    same names and in order, with nothing else (no filter, join, grouping, order or limit)."""
    if len(plan.fragments) != 1 or plan.shipped_to is not None:
        return None
    (fragment,) = plan.fragments
    table = tables.get(fragment.id)
    if table is None:
        return None
    tree = sqlglot.parse_one(plan.residual, read="duckdb")
    if not isinstance(tree, exp.Select) or set(tree.args) - {"expressions", "from_"} - {
        k for k, v in tree.args.items() if not v
    }:
        return None
    source = tree.args["from_"].this
    if not isinstance(source, exp.Table) or source.name != fragment.id:
        return None
    names = []
    for projection in tree.expressions:
        column = projection.unalias()
        if not isinstance(column, exp.Column) or column.name != projection.alias_or_name:
            return None
        names.append(column.name)
    return table if names == table.column_names else None


def materialise(tables: Mapping[str, pa.Table]) -> tuple[bool, str | None]:
    """Whether the residual should copy its inputs into DuckDB tables first, and the line that
    says so (None when there is nothing to decide: fewer inputs than ``MATERIALISE_MIN_INPUTS``)."""
    if len(tables) < MATERIALISE_MIN_INPUTS:
        return False, None
    rows = sum(t.num_rows for t in tables.values())
    if rows > MATERIALISE_MAX_ROWS:
        return False, (
            f"residual: {len(tables)} inputs, {rows:,} rows > {MATERIALISE_MAX_ROWS:,}: joined "
            "as Arrow scans (copying them would cost more than the join order risks)"
        )
    return True, (
        f"residual: {len(tables)} inputs, {rows:,} rows, copied into DuckDB tables so that the "
        "join order sees their column statistics"
    )
