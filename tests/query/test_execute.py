"""What execution does with a plan: semi-join keys travel down chains and cut what silos return."""

from __future__ import annotations

from fed_assets.query import query
from tests.query.compare import assert_same

CHAIN = (
    "SELECT o.order_id, c.segment, r.country_name FROM ref.countries AS r "
    "JOIN crm.customers AS c ON c.country = r.code "
    "JOIN lake.orders AS o ON o.customer_id = c.id WHERE r.risk = 'high'"
)


def test_semi_join_chain_filters_each_silo_by_the_previous_ones_keys(shop):
    silos, colocated = shop
    result = query(CHAIN, silos)
    by_silo = {f.silo: f for f in result.fragments}
    expected = colocated.sql(CHAIN).to_arrow_table()
    assert_same(result.table, expected, CHAIN)
    high_risk_customers = colocated.sql(
        "SELECT count(*) FROM crm.customers WHERE country IN "
        "(SELECT code FROM ref.countries WHERE risk = 'high')"
    ).fetchall()[0][0]
    # Only the customers of the 2 high-risk countries leave crm, and only their orders leave
    # the lake: not all 200 customers and 2,000 orders.
    assert by_silo["ref"].rows == 2
    assert by_silo["crm"].semi_join_keys == 2
    assert by_silo["crm"].rows == high_risk_customers < 200
    assert by_silo["lake"].semi_join_keys == high_risk_customers
    assert by_silo["lake"].rows == expected.num_rows < 2_000
    assert "semi-join filter: country IN <2 keys>" in by_silo["crm"].sql
