"""Whether two query results are the same answer, as TPC-H validation would judge it.

Column names are compared ignoring case; numbers numerically (a decimal equals a float within a
relative tolerance); rows as a multiset, and, where the query has an ORDER BY, the ordering
columns also row by row (rows tied on every ordering column may come in any order).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Sequence

import pyarrow as pa

# TPC-H answers are validated to about this precision; engines sum decimals exactly or in doubles.
REL_TOL = 1e-6
# Values this close to zero count as zero (a double sum may leave 1e-12 where a decimal has 0).
ABS_TOL = 1e-9
# Approximate numbers are rounded to this many significant digits to sort rows alike on both sides.
SORT_DIGITS = 6


def compare(
    expected: pa.Table,
    actual: pa.Table,
    *,
    order_keys: Sequence[str] | None = None,
    types: bool = False,
) -> str | None:
    """None when ``actual`` is the same answer as ``expected``, else why not (one line).

    Args:
        types: also require each column's Arrow type to be the same (a federated query must
            give the schema the same query gives on co-located data).
    """
    want = [n.lower() for n in expected.column_names]
    got = [n.lower() for n in actual.column_names]
    if want != got:
        return f"columns differ: expected {want}, got {got}"
    if types:
        for name, e, a in zip(got, expected.schema.types, actual.schema.types, strict=True):
            if e != a:
                return f"types differ, column {name}: expected {e}, got {a}"
    if expected.num_rows != actual.num_rows:
        return f"row count differs: expected {expected.num_rows}, got {actual.num_rows}"
    approx = [_approximate(f.type) for f in expected.schema]
    left = [tuple(_normal(v) for v in row) for row in _rows(expected)]
    right = [tuple(_normal(v) for v in row) for row in _rows(actual)]
    if order_keys:
        keys = [want.index(k.lower()) for k in order_keys if k.lower() in want]
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            for j in keys:
                if not _same(a[j], b[j]):
                    return (
                        f"order differs at row {i}, column {got[j]}: "
                        f"expected {a[j]!r}, got {b[j]!r}"
                    )
    # Exact columns first in the sort key: rounding approximate ones then rarely decides order.
    order = sorted(range(len(want)), key=lambda j: approx[j])

    def sort_key(row: tuple) -> tuple:
        return tuple(_sort_value(row[j], approx[j]) for j in order)

    for i, (a, b) in enumerate(
        zip(sorted(left, key=sort_key), sorted(right, key=sort_key), strict=True)
    ):
        for j, name in enumerate(got):
            if not _same(a[j], b[j]):
                return f"values differ (row {i} sorted), column {name}: expected {a[j]!r}, got {b[j]!r}"
    return None


def _rows(table: pa.Table) -> list[tuple]:
    columns = [c.to_pylist() for c in table.columns]
    return list(zip(*columns, strict=True)) if columns else []


def _approximate(kind: pa.DataType) -> bool:
    return pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _normal(value: object) -> object:
    """Decimals as floats, integral floats as ints, midnight timestamps as dates."""
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dt.datetime) and value.time() == dt.time(0) and value.tzinfo is None:
        return value.date()
    return value


def _same(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if _number(a) and _number(b):
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return a == b


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sort_value(value: object, approximate: bool) -> tuple:
    """A key that sorts None, numbers and everything else apart, approximate numbers rounded."""
    if value is None:
        return (0, 0)
    if _number(value):
        number = float(value) if approximate else value
        if approximate and number != 0:
            number = round(number, SORT_DIGITS - 1 - math.floor(math.log10(abs(number))))
        return (1, number)
    return (2, str(value))
