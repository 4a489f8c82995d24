"""The cost model: pure functions from statistics to estimated rows, bytes, seconds and dollars.

Statistics come from ``silo.stats(table)``, cached per table and invalidated when the table's
``version()`` changes.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from sqlglot import exp

from fed_assets.errors import FedAssetsError
from fed_assets.query.model import Estimate
from fed_assets.silo import SiloResource, TableStats, arrow_width

if TYPE_CHECKING:
    from fed_assets.query.context import Cut, PlanContext

# Scan throughput (MB/s of Arrow delivered) by silo kind when a silo does not say: measured by
# benchmarks/scan_throughput.py (1 M rows × 8 columns) on the 2-core development machine.
KIND_MB_PER_S = {
    "duckdb": 1394.0,
    "parquet": 924.0,  # local disk; 362 MB/s from S3 (moto on loopback)
    "delta": 639.0,
    "postgres": 145.0,
    "sqlite": 34.0,
    "snowflake": 65.0,  # measured on the fakesnow emulator
    "bigquery": 416.0,  # measured on bqemulator (Storage Read)
}
DEFAULT_MB_PER_S = 50.0
# Fixed cost of one fragment round trip (connect, plan, first batch), seconds.
ROUND_TRIP_S = 0.01
# Selectivity guesses where statistics are silent (System R's classic defaults).
EQ_SELECTIVITY = 0.1
RANGE_SELECTIVITY = 1 / 3
LIKE_SELECTIVITY = 0.1
# A same-silo join that would return more than this many times its inputs' rows is not pushed
# into the silo as one fragment: moving both inputs is cheaper than moving the product.
JOIN_EXPANSION = 2.0
# Rows assumed for a table whose silo reports no count.
UNKNOWN_ROWS = 1_000_000

# How long a table's statistics are trusted before its version() is read again: a version check
# is a metadata round trip (a new connection for a server silo), too slow to repeat per plan.
STATS_RECHECK_S = 30.0

_stats_cache: dict[tuple[str, str], tuple[float, str | None, TableStats]] = {}  # by settings
_stats_lock = threading.Lock()


def table_stats(silo: SiloResource, table: str) -> TableStats:
    """``silo.stats(table)``, cached until ``silo.version(table)`` changes.

    The version is re-read at most every ``STATS_RECHECK_S`` seconds.
    """
    key = (silo.settings_key(), table)  # same settings, same table
    now = time.monotonic()
    with _stats_lock:
        cached = _stats_cache.get(key)
    if cached is not None and now - cached[0] < STATS_RECHECK_S:
        return cached[2]
    try:
        version = silo.version(table).fingerprint
    except FedAssetsError:
        version = None
    if cached is not None and version is not None and cached[1] == version:
        stats = cached[2]
    else:
        try:
            stats = silo.stats(table)
        except FedAssetsError:
            stats = TableStats(rows=None, bytes=None)
    with _stats_lock:
        _stats_cache[key] = (now, version, stats)
    return stats


def estimate_fragment(cut: Cut, context: PlanContext, *, reduced: str | None = None) -> Estimate:
    """Rows and bytes a fragment returns, and the seconds and dollars to move them; with
    ``reduced`` (the fragment's id), after its semi-join keys have filtered it."""
    silo = context.silos[cut.silo]
    rows = context.reduced_rows.get(reduced) if reduced else None
    rows = estimate_rows(cut.tree, cut.silo, context) if rows is None else rows
    nbytes = rows * row_width(cut.tree, cut.silo, context)
    return Estimate(
        rows=rows,
        bytes=nbytes,
        seconds=move_cost(nbytes, silo, context.engine_region, "latency"),
        usd=move_cost(nbytes, silo, context.engine_region, "money"),
    )


def move_cost(nbytes: float, silo: SiloResource, destination: str | None, objective: str) -> float:
    """What moving ``nbytes`` out of ``silo`` to region ``destination`` (``None``: no region, so
    a crossing) costs: seconds for ``objective="latency"``, dollars of egress for ``"money"``."""
    if objective == "money":
        crosses = destination is None or destination != silo.region
        return nbytes / 1e9 * silo.egress_usd_per_gb if crosses else 0.0
    mb_per_s = silo.scan_mb_per_s or KIND_MB_PER_S.get(silo.kind, DEFAULT_MB_PER_S)
    return ROUND_TRIP_S + nbytes / 1e6 / mb_per_s


def estimate_result_bytes(residual: exp.Expression, context: PlanContext) -> float:
    """Bytes of the residual query's result, its fragments read at their estimated sizes."""
    return estimate_rows(residual, "", context) * row_width(residual, "", context)


def estimate_rows(node: exp.Expression, silo_name: str, context: PlanContext) -> float:
    """Estimated result rows of a query tree over one silo's tables."""
    if isinstance(node, exp.Subquery):
        return estimate_rows(node.this, silo_name, context)
    if isinstance(node, exp.Union):
        return estimate_rows(node.left, silo_name, context) + estimate_rows(
            node.right, silo_name, context
        )
    if isinstance(node, exp.SetOperation):
        return estimate_rows(node.left, silo_name, context)
    if isinstance(node, exp.Table) and node.name in context.cuts:  # a fragment, in the residual
        if node.name in context.reduced_rows:
            return context.reduced_rows[node.name]
        cut = context.cuts[node.name]
        return estimate_rows(cut.tree, cut.silo, context)
    if isinstance(node, exp.Table):
        stats = _stats_for(node, silo_name, context)
        return float(stats.rows if stats and stats.rows is not None else UNKNOWN_ROWS)
    if not isinstance(node, exp.Select):
        return 1.0
    from_ = node.args.get("from_")
    sources = ([from_.this] if from_ else []) + [j.this for j in node.args.get("joins") or []]
    source_rows = [estimate_rows(s, silo_name, context) for s in sources] or [1.0]
    rows = source_rows[0]
    for other in source_rows[1:]:
        rows = max(rows, other)  # joins assumed along foreign keys: the larger side survives
    where = node.args.get("where")
    if where is not None:
        rows *= selectivity(where.this)
    if node.args.get("group"):
        rows = max(1.0, rows / 10)
    elif any(node.find_all(exp.AggFunc)) and _aggregates_at_top(node):
        rows = 1.0
    limit = node.args.get("limit")
    if limit is not None and isinstance(limit.expression, exp.Literal):
        rows = min(rows, float(limit.expression.this))
    return max(rows, 1.0)


def join_expands(cond: exp.EQ, placeholders: dict[str, str], context: PlanContext) -> bool:
    """Whether joining two fragments on ``cond`` is expected to return more rows than both
    inputs together (a many-to-many join on a low-cardinality key), from distinct counts."""
    sides = []
    for column in (cond.left, cond.right):
        cut = context.cuts[placeholders[column.table]]
        rows = estimate_rows(cut.tree, cut.silo, context)
        ndv = None
        base = _base_stats(column, placeholders, context)
        if base is not None:
            stats, name = base
            col = next((c for n, c in stats.columns.items() if n.lower() == name), None)
            ndv = col.ndv if col is not None else None
        sides.append((rows, min(ndv, rows) if ndv else rows))
    (rows_a, ndv_a), (rows_b, ndv_b) = sides
    joined = rows_a * rows_b / max(ndv_a, ndv_b, 1.0)
    return joined > JOIN_EXPANSION * (rows_a + rows_b)


def base_rows(fragment_id: str, column: str, context: PlanContext) -> float | None:
    """Rows of the base table a fragment's output ``column`` comes from, when it is a plain
    column of one table (for the share of that table's keys the fragment keeps)."""
    base = _base_stats(exp.column(column, table=fragment_id), {fragment_id: fragment_id}, context)
    rows = base[0].rows if base is not None else None
    return float(rows) if rows else None


def _base_stats(
    column: exp.Column, placeholders: dict[str, str], context: PlanContext
) -> tuple[TableStats, str] | None:
    """Statistics of the base table a residual column reads, and the column's name there."""
    from fed_assets.query.lineage import base_column

    base = base_column(column, placeholders, context)
    if base is None:
        return None
    silo, table, name = base
    spelled = context.spelling.get((silo, table))
    if spelled is None:
        return None
    return table_stats(context.silos[silo], spelled[0]), name


def selectivity(condition: exp.Expression) -> float:
    """Fraction of rows a condition keeps (independence between conjuncts assumed)."""
    if isinstance(condition, exp.And):
        return selectivity(condition.left) * selectivity(condition.right)
    if isinstance(condition, exp.Or):
        a, b = selectivity(condition.left), selectivity(condition.right)
        return 1 - (1 - a) * (1 - b)
    if isinstance(condition, exp.Not):
        return 1 - selectivity(condition.this)
    if isinstance(condition, exp.Paren):
        return selectivity(condition.this)
    if isinstance(condition, exp.EQ):
        return 1.0 if _is_join(condition) else EQ_SELECTIVITY
    if isinstance(condition, exp.In):
        return min(1.0, EQ_SELECTIVITY * max(len(condition.expressions), 1))
    if isinstance(condition, (exp.GT, exp.GTE, exp.LT, exp.LTE)):
        return 1.0 if _is_join(condition) else RANGE_SELECTIVITY
    if isinstance(condition, exp.Between):
        return RANGE_SELECTIVITY / 2
    if isinstance(condition, (exp.Like, exp.ILike)):
        return LIKE_SELECTIVITY
    if isinstance(condition, exp.Boolean):
        return 1.0 if condition.this else 0.0
    return 0.5


def row_width(tree: exp.Expression, silo_name: str, context: PlanContext) -> float:
    """Bytes per output row, from the schema types of the columns projected."""
    select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
    if select is None:
        return 8.0
    width = 0.0
    for projection in select.expressions:
        column = projection.find(exp.Column)
        width += _column_width(column, silo_name, context) if column is not None else 8.0
    return max(width, 1.0)


def _column_width(column: exp.Column, silo_name: str, context: PlanContext) -> float:
    for (silo, _table), schema in context.arrow.items():
        if silo == silo_name and column.name in {n.lower() for n in schema.names}:
            field = next(f for f in schema if f.name.lower() == column.name)
            return float(arrow_width(field.type))
    return 8.0


def _stats_for(table: exp.Table, silo_name: str, context: PlanContext) -> TableStats | None:
    spelled = context.spelling.get((silo_name, table.name))
    if spelled is None:
        return None
    key = (silo_name, spelled[0])
    if key not in context.stats:
        context.stats[key] = table_stats(context.silos[silo_name], spelled[0])
    return context.stats[key]


def _is_join(condition: exp.Binary) -> bool:
    return isinstance(condition.left, exp.Column) and isinstance(condition.right, exp.Column)


def _aggregates_at_top(select: exp.Select) -> bool:
    return all(p.find(exp.AggFunc) is not None for p in select.expressions)
