"""Compare a federated result with the same query run on co-located data."""

from __future__ import annotations

import math

import pyarrow as pa
from sqlglot import parse_one


def _norm(value):
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else value
    if hasattr(value, "as_tuple"):  # Decimal
        return round(float(value), 6)
    return value


def assert_same(actual: pa.Table, expected: pa.Table, sql: str) -> None:
    """Equal column names and types, and equal rows; row order compared only when the query
    orders its output."""
    assert [c.lower() for c in actual.column_names] == [c.lower() for c in expected.column_names]
    types = [f.type for f in actual.schema]
    assert types == [f.type for f in expected.schema], (
        f"federated result types differ from co-located for:\n{sql}\n{types}\n{expected.schema}"
    )
    a = [tuple(_norm(v) for v in r.values()) for r in actual.to_pylist()]
    e = [tuple(_norm(v) for v in r.values()) for r in expected.to_pylist()]
    ordered = parse_one(sql, read="duckdb").args.get("order") is not None
    if not ordered:
        a, e = sorted(a, key=repr), sorted(e, key=repr)
    assert a == e, f"federated result differs from co-located for:\n{sql}"


def colocated_sql(sql: str) -> str:
    """The query for the co-located database (same schema names, so unchanged but validated)."""
    return parse_one(sql, read="duckdb").sql("duckdb")
