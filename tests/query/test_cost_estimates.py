"""Cardinality estimates from statistics, checked against true counts.

The pure functions (``fed_assets.query.cardinality``) are checked on hand-made facts; the
planner's estimates (``cost.estimate_rows`` over a fragment) are checked against the true row
counts of the same SQL on co-located data, as a q-error bound (max(est/true, true/est)).
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlglot

from fed_assets.query import cardinality, plan
from fed_assets.query.cardinality import ColumnFacts, facts_from_stats


def cond(sql: str) -> sqlglot.exp.Expression:
    return sqlglot.parse_one(f"SELECT 1 FROM t WHERE {sql}", read="duckdb").args["where"].this


def facts(**columns: ColumnFacts):
    return lambda column: columns.get(column.name)


X = ColumnFacts(rows=1000, ndv=50, min=0, max=100, nulls=100)
DAY = ColumnFacts(rows=1000, ndv=365, min=dt.date(2024, 1, 1), max=dt.date(2024, 12, 31))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("x = 5", 1 / 50),
        ("x <> 5", 1 - 1 / 50),
        ("x IN (1, 2, 3, 4)", 4 / 50),
        ("x < 25", 0.25),
        ("x >= 90", 0.10),
        ("25 > x", 0.25),  # the literal on the left
        ("x BETWEEN 10 AND 30", 0.20),
        ("x BETWEEN -50 AND 10", 0.10),  # clipped to [min, max]
        ("x IS NULL", 0.1),
        ("x IS NOT NULL", 0.9),
        ("x < 25 AND x >= 90", 0.25 * 0.10),
        ("x < 25 OR x >= 90", 1 - 0.75 * 0.90),
        ("d >= DATE '2024-07-01'", 184 / 365),
        ("d < CAST('2024-02-01' AS DATE)", 31 / 365),
    ],
)
def test_selectivity_from_min_max_ndv_and_nulls(sql, expected):
    got = cardinality.selectivity(cond(sql), facts(x=X, d=DAY))
    assert got == pytest.approx(expected, rel=0.01)


def test_a_literal_outside_the_range_keeps_almost_nothing():
    assert cardinality.selectivity(cond("x = 500"), facts(x=X)) < 1e-5
    assert cardinality.selectivity(cond("x > 500"), facts(x=X)) < 1e-5
    assert cardinality.selectivity(cond("x IN (400, 500)"), facts(x=X)) < 1e-5


def test_without_statistics_the_classic_defaults_apply():
    assert cardinality.selectivity(cond("x = 5")) == cardinality.EQ_SELECTIVITY
    assert cardinality.selectivity(cond("x < 5")) == pytest.approx(1 / 3)
    # two columns of one row compared: neither always nor never
    assert cardinality.selectivity(cond("a < b"), facts(a=X, b=X)) == 0.5


def test_in_subquery_keeps_the_share_of_distinct_values_it_names():
    assert cardinality.in_subquery_selectivity(10, X) == pytest.approx(10 / 50)
    assert cardinality.in_subquery_selectivity(500, X) == 1.0  # cannot keep more than all


def test_integer_and_date_ranges_bound_the_distinct_count():
    assert facts_from_stats(1_000_000, None, 1, 150, 0).ndv == 150
    assert facts_from_stats(100, None, 1, 1_000_000, 0).ndv == 100  # never above the rows
    assert facts_from_stats(10_000, None, dt.date(2024, 1, 1), dt.date(2024, 1, 31), 0).ndv == 31
    assert facts_from_stats(10_000, None, "a", "z", 0).ndv is None  # strings: unknown


def test_foreign_key_join_keeps_the_fact_side():
    orders = ColumnFacts(rows=1_500_000, ndv=100_000)
    customer = ColumnFacts(rows=150_000, ndv=150_000)
    assert cardinality.join_rows(1_500_000, 150_000, [(orders, customer)]) == 1_500_000
    # a fifth of the customers keep about a fifth of the orders (300 k): the containment model
    # assumes the kept customers are among those with orders, so it says 450 k
    got = cardinality.join_rows(1_500_000, 30_000, [(orders, customer)])
    assert 300_000 <= got <= 1.5 * 300_000


def test_composite_key_is_capped_by_the_referenced_table():
    """lineitem ⋈ partsupp on (partkey, suppkey): one partsupp row per lineitem row."""
    l_part, l_supp = ColumnFacts(6e6, 2e5), ColumnFacts(6e6, 1e4)
    ps_part, ps_supp = ColumnFacts(8e5, 2e5), ColumnFacts(8e5, 1e4)
    got = cardinality.join_rows(6e6, 8e5, [(l_part, ps_part), (l_supp, ps_supp)])
    assert got == pytest.approx(6e6)


def test_groups_are_the_product_of_distinct_counts_capped_by_rows():
    flag, status = ColumnFacts(6e6, 3), ColumnFacts(6e6, 2)
    assert cardinality.group_rows(6e6, [flag, status]) == 6
    assert cardinality.group_rows(4, [flag, status]) == 4
    assert cardinality.group_rows(6e6, [None]) == pytest.approx(6e5)  # unknown: a tenth


# ------------------------------------------------------------------ against true counts
# Fragment SQL over the shop's Parquet lake (min/max in the footers, no distinct counts) and the
# q-error each estimate must stay within.
CASES = [
    ("SELECT order_id FROM lake.orders WHERE total < 100", 1.5),
    ("SELECT order_id FROM lake.orders WHERE total BETWEEN 200 AND 400", 1.5),
    ("SELECT order_id FROM lake.orders WHERE customer_id >= 150", 1.5),
    ("SELECT order_id FROM lake.orders WHERE order_id = 17", 1.01),
    ("SELECT order_id FROM lake.orders WHERE order_id IN (3, 5, 7000)", 1.01),
    (
        "SELECT order_id FROM lake.orders WHERE ordered_at >= TIMESTAMP '2025-10-01 00:00:00'",
        1.5,
    ),
    ("SELECT order_id FROM lake.orders WHERE customer_id IS NULL", 1.5),
    ("SELECT customer_id, COUNT(*) FROM lake.orders GROUP BY customer_id", 1.5),
    (
        "SELECT customer_id FROM lake.orders GROUP BY customer_id HAVING COUNT(*) > 5",
        3.0,
    ),
    (
        "SELECT o.order_id, i.qty FROM lake.orders AS o JOIN lake.items AS i "
        "ON i.order_id = o.order_id WHERE o.total < 200",
        1.5,
    ),
    (
        "SELECT o.order_id, i.qty FROM lake.orders AS o JOIN lake.items AS i "
        "ON i.order_id = o.order_id WHERE i.qty >= 5 AND o.order_id < 500",
        1.5,
    ),
    (
        "SELECT i.qty FROM lake.items AS i WHERE i.order_id IN "
        "(SELECT order_id FROM lake.orders WHERE total < 100)",
        1.5,
    ),
    # The DuckDB file's own statistics: distinct counts and ranges.
    ("SELECT id FROM crm.customers WHERE country = 'KY'", 1.6),
    ("SELECT id FROM crm.customers WHERE income >= 100000", 1.5),
    ("SELECT segment, COUNT(*) FROM crm.customers GROUP BY segment", 1.01),
]


@pytest.mark.parametrize(("sql", "bound"), CASES, ids=[c[0][30:80] for c in CASES])
def test_estimates_against_true_counts(shop, sql, bound):
    silos, colocated = shop
    planned = plan(sql, silos)
    (fragment,) = planned.fragments  # one silo: the whole query is one fragment
    true = colocated.sql(f"SELECT COUNT(*) FROM ({sql})").fetchall()[0][0]
    estimated = fragment.estimate.rows
    q = max(max(estimated, 1) / max(true, 1), max(true, 1) / max(estimated, 1))
    assert q <= bound, f"estimated {estimated:.0f} rows, true {true} (q-error {q:.2f})"
