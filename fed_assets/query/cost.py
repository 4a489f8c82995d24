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
from fed_assets.query import cardinality
from fed_assets.query.model import Estimate
from fed_assets.query.tree import conjuncts, entries, where_conjuncts
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
# A same-silo join that would return more than this many times its inputs' rows is not pushed
# into the silo as one fragment: moving both inputs is cheaper than moving the product.
JOIN_EXPANSION = 2.0
# A join a silo estimates to take at least this long (seconds) and more than PRICED_RATIO times
# moving its tables runs in the embedded engine instead (priced_out): below it, a round trip
# saved matters more than the silo's speed; the ratio leaves room for the estimate's error.
PRICED_MIN_S = 1.0
PRICED_RATIO = 2.0
# Rows assumed for a table whose silo reports no count.
UNKNOWN_ROWS = 1_000_000

# How long a table's statistics are trusted before its version() is read again: a version check
# is a metadata round trip (a new connection for a server silo), too slow to repeat per plan.
STATS_RECHECK_S = 30.0

_stats_cache: dict[tuple[str, str, str], tuple[float, str | None, TableStats]] = {}
_stats_lock = threading.Lock()


def table_stats(silo: SiloResource, table: str) -> TableStats:
    """``silo.stats(table)``, cached until ``silo.version(table)`` changes.

    The version is re-read at most every ``STATS_RECHECK_S`` seconds.
    """
    # Same settings, same table, same reader: a catalog-snapshot stand-in shares its silo's
    # settings but knows only row counts, and must not hide the live silo's column statistics.
    key = (silo.settings_key(), type(silo).__qualname__, table)
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


def _in_subquery(
    condition: exp.Expression, lookup, silo_name: str, context: PlanContext
) -> float | None:
    """Selectivity of ``column IN (subquery)`` from the subquery's estimated rows and the
    column's distinct values, or None when it is another condition or the column is unknown."""
    if not isinstance(condition, exp.In) or condition.args.get("query") is None:
        return None
    if not isinstance(condition.this, exp.Column):
        return None
    facts = lookup(condition.this)
    if facts is None or not facts.ndv:
        return None
    rows = estimate_rows(condition.args["query"], silo_name, context)
    return cardinality.in_subquery_selectivity(rows, facts)


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
    return _select_rows(node, silo_name, context)


def _select_rows(select: exp.Select, silo_name: str, context: PlanContext) -> float:
    """Rows of one SELECT: its inputs' rows, each filtered by its own conjuncts, joined on their
    equi-join keys in FROM order, then grouped, filtered by HAVING and limited."""
    lookup = facts_lookup(select, silo_name, context)
    inputs: dict[str, float] = {}
    kinds: dict[str, exp.Join | None] = {}
    conditions = where_conjuncts(select)
    for source, join in entries(select):
        alias = source.alias_or_name
        inputs[alias] = estimate_rows(source, silo_name, context)
        kinds[alias] = join
        if join is not None:
            conditions += conjuncts(join.args.get("on"))
    share = dict.fromkeys(inputs, 1.0)
    pairs: list[tuple[exp.Column, exp.Column]] = []
    other = 1.0
    for condition in conditions:
        aliases = {c.table for c in condition.find_all(exp.Column)} & inputs.keys()
        if (
            isinstance(condition, exp.EQ)
            and isinstance(condition.left, exp.Column)
            and isinstance(condition.right, exp.Column)
            and len(aliases) == 2
        ):
            pairs.append((condition.left, condition.right))
        elif len(aliases) == 1:
            (alias,) = aliases
            share[alias] *= _in_subquery(condition, lookup, silo_name, context) or (
                cardinality.selectivity(condition, lookup)
            )
        else:
            other *= cardinality.selectivity(condition, lookup)
    rows = 1.0
    joined: set[str] = set()
    for alias, source_rows in inputs.items():
        here = source_rows * share[alias]
        if not joined:
            rows, joined = here, {alias}
            continue
        keys = []
        for left, right in pairs:
            if left.table == alias and right.table in joined:
                left, right = right, left
            if left.table in joined and right.table == alias:
                keys.append((lookup(left), lookup(right)))
        out = cardinality.join_rows(rows, here, keys)
        join = kinds[alias]
        kind = (join.args.get("kind") or "").upper() if join is not None else ""
        if kind in ("SEMI", "ANTI"):
            out = min(rows, out) if kind == "SEMI" else max(rows - min(rows, out), 1.0)
        elif join is not None and join.args.get("side"):
            out = max(out, rows)
        rows = out
        joined.add(alias)
    rows *= other
    group = select.args.get("group")
    if group:
        columns = [e for e in group.expressions]
        rows = cardinality.group_rows(
            rows, [lookup(c) if isinstance(c, exp.Column) else None for c in columns]
        )
    elif any(select.find_all(exp.AggFunc)) and _aggregates_at_top(select):
        rows = 1.0
    elif select.args.get("distinct"):
        columns = [p.unalias() for p in select.expressions]
        rows = cardinality.group_rows(
            rows, [lookup(c) if isinstance(c, exp.Column) else None for c in columns]
        )
    having = select.args.get("having")
    if having is not None:
        rows *= cardinality.selectivity(having.this, lookup)
    limit = select.args.get("limit")
    if limit is not None and isinstance(limit.expression, exp.Literal):
        rows = min(rows, float(limit.expression.this))
    return max(rows, 1.0)


def facts_lookup(select: exp.Select, silo_name: str, context: PlanContext) -> cardinality.Lookup:
    """What the statistics say about a column of ``select``'s inputs: a base table's column in a
    silo, a fragment's column traced to its base table in the residual, or a derived table's
    plain column traced inside it."""
    sources = {s.alias_or_name: s for s, _ in entries(select)}
    memo: dict[tuple[str, str], cardinality.ColumnFacts | None] = {}

    def lookup(column: exp.Column) -> cardinality.ColumnFacts | None:
        key = (column.table, column.name)
        if key not in memo:
            memo[key] = _column_facts(column, sources.get(column.table), silo_name, context)
        return memo[key]

    return lookup


def _column_facts(
    column: exp.Column, source: exp.Expression | None, silo_name: str, context: PlanContext
) -> cardinality.ColumnFacts | None:
    if isinstance(source, exp.Table) and source.name in context.cuts and not source.args.get("db"):
        base = _base_stats(column, {column.table: source.name}, context)
        return None if base is None else _facts(base[0], base[1])
    if isinstance(source, exp.Table):
        stats = _stats_for(source, silo_name, context)
        return None if stats is None else _facts(stats, column.name)
    if isinstance(source, exp.Subquery) and isinstance(source.this, exp.Select):
        inner = source.this
        projection = next((p for p in inner.expressions if p.alias_or_name == column.name), None)
        if projection is not None and isinstance(projection.unalias(), exp.Column):
            return facts_lookup(inner, silo_name, context)(projection.unalias())
    return None


def _facts(stats: TableStats, name: str) -> cardinality.ColumnFacts | None:
    if stats.rows is None:
        return None
    col = next((c for n, c in stats.columns.items() if n.lower() == name.lower()), None)
    if col is None:
        return cardinality.ColumnFacts(rows=float(stats.rows))
    return cardinality.facts_from_stats(stats.rows, col.ndv, col.min, col.max, col.null_count)


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


def base_distinct(fragment_id: str, column: str, context: PlanContext) -> float | None:
    """Distinct values of the base column a fragment's output ``column`` is, or None when the
    statistics do not say or it is not a plain column of one table."""
    base = _base_stats(exp.column(column, table=fragment_id), {fragment_id: fragment_id}, context)
    if base is None:
        return None
    facts = _facts(*base)
    return facts.ndv if facts is not None and facts.ndv else None


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
    """Arrow bytes of a column of ``silo_name``'s tables (8 when unknown), indexed once per
    planning run and again when more schemas have been read."""
    seen, widths = context.widths.get(silo_name, (-1, {}))
    if seen != len(context.arrow):
        widths = {}
        for (silo, _table), schema in context.arrow.items():
            if silo == silo_name:
                for f in schema:
                    widths.setdefault(f.name.lower(), float(arrow_width(f.type)))
        context.widths[silo_name] = (len(context.arrow), widths)
    return widths.get(column.name, 8.0)


def _stats_for(table: exp.Table, silo_name: str, context: PlanContext) -> TableStats | None:
    spelled = context.spelling.get((silo_name, table.name))
    if spelled is None:
        return None
    key = (silo_name, spelled[0])
    if key not in context.stats:
        context.stats[key] = table_stats(context.silos[silo_name], spelled[0])
    return context.stats[key]


def _aggregates_at_top(select: exp.Select) -> bool:
    return all(p.find(exp.AggFunc) is not None for p in select.expressions)


def priced_out(node: exp.Expression, silo_name: str, sql: str, context: PlanContext) -> str | None:
    """Why the join ``node`` (``sql`` in the silo's dialect) should not run in its silo, or None.

    The silo's own estimate of running it (``execution_seconds``: PostgreSQL's EXPLAIN cost) is
    set against moving the columns it reads of each of its tables and joining them in the
    embedded engine. Kept local when the silo's estimate is over ``PRICED_MIN_S`` and more than
    ``PRICED_RATIO`` times the move: a silo without indexes for the join (TPC-H Q13 with orders
    in PostgreSQL took 7 s there; the tables move in under 2 s).
    """
    silo = context.silos[silo_name]
    pushed = silo.execution_seconds(sql)
    if pushed is None or pushed < PRICED_MIN_S:
        return None
    moved = 0.0
    names = []
    for table in node.find_all(exp.Table):
        spelled = context.spelling.get((silo_name, table.name))
        if spelled is None:
            return None
        stats = table_stats(silo, spelled[0])
        if stats.rows is None:
            return None
        alias = table.alias_or_name
        used = {c.name.lower() for c in node.find_all(exp.Column) if c.table == alias}
        schema = silo.cached_schema(spelled[0])
        width = sum(arrow_width(f.type) for f in schema if f.name.lower() in used) or 8
        moved += move_cost(stats.rows * width, silo, context.engine_region, "latency")
        names.append(table.name)
    if pushed <= PRICED_RATIO * moved:
        return None
    return (
        f"planned: silo '{silo_name}' estimates {pushed:.1f} s to join {', '.join(names)} itself "
        f"(EXPLAIN cost), moving their columns about {moved:.1f} s: joined in the embedded engine"
    )
