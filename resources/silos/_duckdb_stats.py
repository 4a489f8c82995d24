"""Column statistics of a DuckDB table, from DuckDB's own statistics (no scan of the data).

Ranges: DuckDB keeps each column's minimum and maximum and folds ``SELECT min(c), max(c)`` into
a constant from them; the query runs only when ``EXPLAIN`` shows it folded (no table scan).
Distinct counts: the estimate DuckDB's optimizer gives a ``GROUP BY`` of the column (its
HyperLogLog statistics), read from ``EXPLAIN (FORMAT JSON)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
from sqlglot import exp

from fed_assets.silo import ColumnStats

Fetch = Callable[[str], list[tuple]]


def group_estimate(plan_json: str) -> int | None:
    """The estimated group count of the first group-by operator in a JSON ``EXPLAIN``. Pure."""
    for node in _nodes(_parse(plan_json)):
        if "GROUP_BY" in str(node.get("name", "")):
            value = (node.get("extra_info") or {}).get("Estimated Cardinality")
            try:
                return int(str(value).replace(",", ""))
            except ValueError:
                return None
    return None


def scans_table(plan_json: str) -> bool:
    """Whether a JSON ``EXPLAIN`` reads a table (rather than constants folded from its
    statistics); an unreadable plan counts as a scan. Pure."""
    nodes = list(_nodes(_parse(plan_json)))
    return not nodes or any(
        "SCAN" in str(n.get("name", "")) and "COLUMN_DATA" not in str(n.get("name", ""))
        for n in nodes
    )


def table_column_stats(
    fetch: Fetch, *, table: exp.Table, fields: list[pa.Field]
) -> dict[str, ColumnStats]:
    """``ColumnStats`` (range of number and date columns, distinct count of every column).

    Args:
        fetch: runs one SQL statement on the DuckDB file and returns its rows.
        table: the table, as the file names it.
        fields: the table's columns.
    """
    column = {f.name: exp.column(f.name, quoted=True) for f in fields}
    ranged = [f.name for f in fields if _has_range(f.type)]
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    if ranged:
        bounds = [exp.func(agg, column[c].copy()) for c in ranged for agg in ("min", "max")]
        sql = exp.select(*bounds).from_(table.copy()).sql("duckdb")
        if not scans_table(fetch(f"EXPLAIN (FORMAT JSON) {sql}")[0][1]):
            (values,) = fetch(sql)
            for i, name in enumerate(ranged):
                low[name], high[name] = values[2 * i], values[2 * i + 1]
    result = {}
    for f in fields:
        grouped = (
            exp.select(column[f.name].copy())
            .from_(table.copy())
            .group_by(column[f.name].copy())
            .sql("duckdb")
        )
        plan = fetch(f"EXPLAIN (FORMAT JSON) {grouped}")
        result[f.name] = ColumnStats(
            ndv=group_estimate(plan[0][1]) if plan else None,
            min=low.get(f.name),
            max=high.get(f.name),
        )
    return result


def _has_range(kind: pa.DataType) -> bool:
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_temporal(kind)
    )


def _parse(plan_json: str) -> Any:
    try:
        return json.loads(plan_json)
    except ValueError:
        return None


def _nodes(node: Any):
    if isinstance(node, list):
        for child in node:
            yield from _nodes(child)
    elif isinstance(node, Mapping):
        yield node
        yield from _nodes(node.get("children", []))
