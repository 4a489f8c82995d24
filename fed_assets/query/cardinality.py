"""Cardinality estimates from column statistics: selectivity, joins, groups (pure functions).

Every function takes the facts it needs (``ColumnFacts`` through a ``Lookup``) and returns a
number; nothing here reads a silo. Where statistics are silent the System R defaults apply.

- ``col = v``: 1/NDV, 0 when ``v`` lies outside [min, max]; ``col IN (k values)``: k/NDV.
- ``col < v`` and friends, ``BETWEEN``: the share of [min, max] kept (numbers and dates).
- ``IS NULL``: the null fraction; ``NOT``, ``AND``, ``OR`` as independent events.
- ``a.x = b.y`` (a join): |A|·|B| / max(NDV(x), NDV(y)), each NDV capped by the other side's rows
  (containment: a foreign key holds no more distinct values than the key it references).
- ``GROUP BY`` columns: the product of their NDVs, capped by the input rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

# Selectivity guesses where statistics are silent (System R's classic defaults).
EQ_SELECTIVITY = 0.1
RANGE_SELECTIVITY = 1 / 3
LIKE_SELECTIVITY = 0.1
# A comparison between two columns of one row (l_commitdate < l_receiptdate): no statistics can
# say; a half is the neutral guess between "always" and "never".
COLUMN_COMPARISON_SELECTIVITY = 0.5
# Share of rows a group-by keeps when a grouping column's distinct count is unknown.
UNKNOWN_GROUP_SHARE = 0.1
# The smallest selectivity an estimate goes down to: a literal outside [min, max] may still match
# a row written since the statistics were read.
MIN_SELECTIVITY = 1e-6


@dataclass(frozen=True)
class ColumnFacts:
    """What is known about one column of one input: its table's rows, distinct values, range
    and nulls (``None`` where unknown)."""

    rows: float
    ndv: float | None = None
    min: Any = None
    max: Any = None
    nulls: float | None = None


Lookup = Callable[[exp.Column], "ColumnFacts | None"]


def no_facts(_column: exp.Column) -> ColumnFacts | None:
    return None


def facts_from_stats(rows: float | None, ndv: Any, low: Any, high: Any, nulls: Any) -> ColumnFacts:
    """``ColumnFacts`` from a silo's ``ColumnStats`` fields; an integer or date column without a
    distinct count gets at most ``max - min + 1``, and never more than the table's rows."""
    rows = float(rows) if rows is not None else None
    if ndv is None:
        span = _span(low, high)
        if span is not None and isinstance(low, int | dt.date) and not isinstance(low, bool):
            ndv = span + 1
    if ndv is not None and rows is not None:
        ndv = min(float(ndv), rows)
    return ColumnFacts(
        rows=rows if rows is not None else 0.0,
        ndv=None if ndv is None else max(float(ndv), 1.0),
        min=low,
        max=high,
        nulls=None if nulls is None else float(nulls),
    )


def selectivity(condition: exp.Expression, lookup: Lookup = no_facts) -> float:
    """Fraction of rows ``condition`` keeps (independence between conjuncts assumed)."""
    return max(_selectivity(condition, lookup), 0.0)


def _selectivity(condition: exp.Expression, lookup: Lookup) -> float:
    if isinstance(condition, exp.And):
        return _selectivity(condition.left, lookup) * _selectivity(condition.right, lookup)
    if isinstance(condition, exp.Or):
        a, b = _selectivity(condition.left, lookup), _selectivity(condition.right, lookup)
        return 1 - (1 - a) * (1 - b)
    if isinstance(condition, exp.Not):
        return 1 - _selectivity(condition.this, lookup)
    if isinstance(condition, exp.Paren):
        return _selectivity(condition.this, lookup)
    if isinstance(condition, exp.Boolean):
        return 1.0 if condition.this else 0.0
    if isinstance(condition, exp.Is):
        return _is_null(condition, lookup)
    if isinstance(condition, exp.EQ | exp.NEQ):
        kept = _equality(condition, lookup)
        return kept if isinstance(condition, exp.EQ) else 1 - kept
    if isinstance(condition, exp.In):
        return _in_list(condition, lookup)
    if isinstance(condition, exp.GT | exp.GTE | exp.LT | exp.LTE):
        return _range(condition, lookup)
    if isinstance(condition, exp.Between):
        return _between(condition, lookup)
    if isinstance(condition, exp.Like | exp.ILike):
        return LIKE_SELECTIVITY
    return 0.5


def _equality(condition: exp.Binary, lookup: Lookup) -> float:
    column, value = _column_and_value(condition)
    if column is None:
        if _columns_both(condition):  # a join, priced by join_rows
            return 1.0
        return EQ_SELECTIVITY
    facts = lookup(column)
    if facts is None:
        return EQ_SELECTIVITY
    if value is not None and _outside(value, facts):
        return MIN_SELECTIVITY
    return 1 / facts.ndv if facts.ndv else EQ_SELECTIVITY


def in_subquery_selectivity(subquery_rows: float, facts: ColumnFacts) -> float:
    """Share of rows whose column value is among ``subquery_rows`` values (each a distinct value
    of the column at most): ``column IN (SELECT ...)`` as a semi-join. Pure."""
    if not facts.ndv:
        return EQ_SELECTIVITY * 5
    return min(1.0, max(subquery_rows, 1.0) / facts.ndv)


def _in_list(condition: exp.In, lookup: Lookup) -> float:
    if condition.args.get("query") is not None:  # IN (subquery): a semi-join
        return EQ_SELECTIVITY * 5
    values = condition.expressions
    facts = lookup(condition.this) if isinstance(condition.this, exp.Column) else None
    if facts is not None and facts.ndv:
        inside = [v for v in map(literal_value, values) if v is None or not _outside(v, facts)]
        return min(1.0, max(len(inside), 0) / facts.ndv) or MIN_SELECTIVITY
    return min(1.0, EQ_SELECTIVITY * max(len(values), 1))


def _range(condition: exp.Binary, lookup: Lookup) -> float:
    column, value = _column_and_value(condition)
    if column is None:
        return COLUMN_COMPARISON_SELECTIVITY if _columns_both(condition) else RANGE_SELECTIVITY
    facts = lookup(column)
    low, high = (facts.min, facts.max) if facts else (None, None)
    span = _span(low, high)
    if value is None or span is None or _number(value) is None:
        return RANGE_SELECTIVITY
    # Normalise to "column > value" or "column < value" whichever side the column is on.
    greater = isinstance(condition, exp.GT | exp.GTE)
    if condition.left is not column:
        greater = not greater
    position = _number(value) - _number(low)
    if span == 0:
        return 1.0 if (position >= 0 if greater else position <= 0) else MIN_SELECTIVITY
    share = 1 - position / span if greater else position / span
    return min(max(share, MIN_SELECTIVITY), 1.0)


def _between(condition: exp.Between, lookup: Lookup) -> float:
    column = condition.this
    low, high = literal_value(condition.args["low"]), literal_value(condition.args["high"])
    facts = lookup(column) if isinstance(column, exp.Column) else None
    span = _span(facts.min, facts.max) if facts else None
    if span is None or low is None or high is None or _number(low) is None:
        return RANGE_SELECTIVITY / 2
    if span == 0:
        return 1.0 if _number(low) <= _number(facts.min) <= _number(high) else MIN_SELECTIVITY
    start = max(_number(low), _number(facts.min))
    end = min(_number(high), _number(facts.max))
    return min(max((end - start) / span, MIN_SELECTIVITY), 1.0)


def _is_null(condition: exp.Is, lookup: Lookup) -> float:
    if not isinstance(condition.expression, exp.Null) or not isinstance(condition.this, exp.Column):
        return 0.5
    facts = lookup(condition.this)
    if facts is None or facts.nulls is None or not facts.rows:
        return EQ_SELECTIVITY
    return min(facts.nulls / facts.rows, 1.0)


def join_rows(
    left_rows: float,
    right_rows: float,
    keys: Sequence[tuple[ColumnFacts | None, ColumnFacts | None]],
) -> float:
    """Rows of an inner equi-join of inputs of ``left_rows`` and ``right_rows`` on ``keys``
    (facts of each side's key column); a cross product when there are none.

    Each side's key holds at most its rows' worth of distinct values (a composite key at most
    the product of its columns'), and at most the other side's table rows (containment).
    """
    if not keys:
        return left_rows * right_rows
    left_ndv = _key_ndv([k[0] for k in keys], left_rows)
    right_ndv = _key_ndv([k[1] for k in keys], right_rows)
    left_table = max((k[0].rows for k in keys if k[0] is not None), default=left_rows)
    right_table = max((k[1].rows for k in keys if k[1] is not None), default=right_rows)
    left_ndv = min(left_ndv, max(right_table, right_rows))
    right_ndv = min(right_ndv, max(left_table, left_rows))
    return left_rows * right_rows / max(left_ndv, right_ndv, 1.0)


def _key_ndv(columns: Sequence[ColumnFacts | None], rows: float) -> float:
    """Distinct values of a (composite) key over an input of ``rows``: unknown columns count as
    unique, as join keys usually are on one side."""
    product = 1.0
    for facts in columns:
        product *= facts.ndv if facts is not None and facts.ndv else rows
    return max(min(product, rows), 1.0)


def group_rows(rows: float, columns: Sequence[ColumnFacts | None]) -> float:
    """Groups a ``GROUP BY`` over ``columns`` of an input of ``rows`` forms."""
    if not columns:
        return 1.0
    if any(f is None or not f.ndv for f in columns):
        known = [f.ndv for f in columns if f is not None and f.ndv]
        guess = rows * UNKNOWN_GROUP_SHARE
        product = 1.0
        for ndv in known:
            product *= ndv
        return max(1.0, min(rows, max(guess, product) if known else guess))
    product = 1.0
    for facts in columns:
        product *= facts.ndv
    return max(1.0, min(rows, product))


def filtered(facts: ColumnFacts, share: float) -> ColumnFacts:
    """A column's facts after a filter keeping ``share`` of its table's rows: the rows shrink,
    and so does the distinct count, never below one value."""
    rows = facts.rows * share
    ndv = None if facts.ndv is None else max(min(facts.ndv, rows), 1.0)
    return ColumnFacts(rows=rows, ndv=ndv, min=facts.min, max=facts.max, nulls=facts.nulls)


# ------------------------------------------------------------------ literals and ranges
def literal_value(node: exp.Expression) -> Any:
    """The Python value of a literal (numbers, strings, ``DATE '…'`` casts), else None."""
    if isinstance(node, exp.Paren):
        return literal_value(node.this)
    if isinstance(node, exp.Neg):
        inner = literal_value(node.this)
        return -inner if isinstance(inner, int | float) else None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        try:
            return int(node.this)
        except ValueError:
            return float(node.this)
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string:
        if node.to.is_type(exp.DataType.Type.DATE):
            try:
                return dt.date.fromisoformat(node.this.this)
            except ValueError:
                return None
        return literal_value(node.this)
    if isinstance(node, exp.TsOrDsToDate | exp.StrToDate | exp.Date) and isinstance(
        node.this, exp.Literal
    ):
        try:
            return dt.date.fromisoformat(node.this.this)
        except ValueError:
            return None
    return None


def _column_and_value(condition: exp.Binary) -> tuple[exp.Column | None, Any]:
    left, right = condition.left, condition.right
    if isinstance(left, exp.Column) and not isinstance(right, exp.Column):
        return left, literal_value(right)
    if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
        return right, literal_value(left)
    return None, None


def _columns_both(condition: exp.Binary) -> bool:
    return isinstance(condition.left, exp.Column) and isinstance(condition.right, exp.Column)


def _number(value: Any) -> float | None:
    """Numbers, decimals and dates on one axis (dates as day numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp() / 86400
    if isinstance(value, dt.date):
        return float(value.toordinal())
    return None


def _span(low: Any, high: Any) -> float | None:
    a, b = _number(low), _number(high)
    if a is None or b is None or b < a:
        return None
    return b - a


def _outside(value: Any, facts: ColumnFacts) -> bool:
    """Whether a literal lies outside the column's [min, max] (comparable values only)."""
    if facts.min is None or facts.max is None:
        return False
    v, low, high = _number(value), _number(facts.min), _number(facts.max)
    if v is not None and low is not None and high is not None:
        return v < low or v > high
    if isinstance(value, str) and isinstance(facts.min, str) and isinstance(facts.max, str):
        return value < facts.min or value > facts.max
    return False
