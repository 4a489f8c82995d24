"""Run-time decisions: what the executor re-decides once fragments' actual sizes are known.

The planner chooses semi-joins from estimates; the executor runs each key source first and,
with its real distinct keys in hand, sends them into the target only when that still pays:

- at most ``SEMIJOIN_MAX_KEYS`` keys (a longer list costs more to send and match than it saves);
- fewer than the target's expected rows over ``SEMIJOIN_MIN_RATIO`` (the planner's own test, now
  on actual keys: a "small" side that turned out as big as the target filters almost nothing).

Each decision is kept as one line of text for ``QueryResult.decisions``, EXPLAIN and the asset
metadata.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from fed_assets.query.model import SemiJoin
from fed_assets.query.rules.choose_semi_joins import SEMIJOIN_MAX_KEYS, SEMIJOIN_MIN_RATIO


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
        else:
            keys[sj.target_column] = values
            decisions.append(
                f"{what}: sent {len(values):,} keys (planned for about {sj.source_rows or 0:,.0f})"
            )
    return keys, decisions
