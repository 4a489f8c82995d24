"""Residency policies: refused plans move zero bytes; rewritten plans move only what is allowed."""

from __future__ import annotations

import pytest

from fed_assets.query import PolicyViolation, plan, query
from fed_assets.silo import TablePolicy
from tests.query.compare import assert_same


def test_pii_column_is_refused_before_any_byte_moves(shop, scans):
    silos, _ = shop
    with pytest.raises(PolicyViolation) as info:
        query(
            "SELECT c.email, o.total FROM crm.customers AS c JOIN lake.orders AS o ON o.customer_id = c.id",
            silos,
        )
    message = str(info.value)
    assert "customers" in message and "'email'" in message and "pii" in message and "eu" in message
    assert scans == []


def test_pii_used_only_inside_the_silo_is_allowed(shop, scans):
    silos, colocated = shop
    sql = (
        "SELECT c.segment, SUM(o.total) AS total FROM crm.customers AS c JOIN lake.orders AS o "
        "ON o.customer_id = c.id WHERE c.email LIKE 'c1%' GROUP BY c.segment"
    )
    result = query(sql, silos)
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)
    crm_sql = [s for name, s in scans if name == "crm"]
    assert crm_sql and all('"email" AS' not in s for s in crm_sql)  # filtered on, never shipped


def test_pii_inside_an_aggregate_may_leave(shop):
    silos, colocated = shop
    sql = "SELECT c.segment, COUNT(DISTINCT c.email) AS people FROM crm.customers AS c GROUP BY c.segment"
    result = query(sql, silos)
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)
    assert "PII only inside aggregates" in result.fragments[0].rule


def test_same_region_engine_may_read_pii(shop):
    silos, _ = shop
    result = query(
        "SELECT c.name FROM crm.customers AS c JOIN ref.countries AS r ON r.code = c.country",
        silos,
        engine_region="eu",
    )
    assert result.table.num_rows > 0
    assert all(f.rule == "same region (eu)" for f in result.fragments)
    assert {(f.source_region, f.destination_region) for f in result.fragments} == {("eu", "eu")}


def test_aggregates_only_table_is_aggregated_in_place_with_minimum_groups(strict_shop, scans):
    silos, colocated = strict_shop
    sql = "SELECT status, COUNT(*) AS n, SUM(total) AS revenue FROM lake.orders GROUP BY status"
    result = query(sql, silos)
    (fragment,) = result.fragments
    assert "HAVING COUNT(*) >= 50" in fragment.sql
    assert "aggregates only, groups ≥ 50" in fragment.rule
    assert fragment.rows == result.table.num_rows  # only group rows moved
    expected = colocated.sql(sql + " HAVING COUNT(*) >= 50").to_arrow_table()
    assert_same(result.table, expected, sql)


def test_aggregates_only_table_in_a_cross_silo_join_is_pre_aggregated(strict_shop):
    silos, colocated = strict_shop
    sql = (
        "SELECT c.segment, SUM(o.total) AS revenue FROM lake.orders AS o JOIN crm.customers AS c "
        "ON c.id = o.customer_id GROUP BY c.segment"
    )
    planned = plan(sql, silos)
    lake = next(f for f in planned.fragments if f.silo == "lake")
    assert "GROUP BY" in lake.sql and "HAVING COUNT(*) >= 50" in lake.sql


def test_aggregates_only_table_shipping_rows_is_refused(strict_shop, scans):
    silos, _ = strict_shop
    with pytest.raises(PolicyViolation) as info:
        query(
            "SELECT o.order_id, c.segment FROM lake.orders AS o JOIN crm.customers AS c ON c.id = o.customer_id",
            silos,
        )
    assert "aggregates_only" in str(info.value) and "orders" in str(info.value)
    assert scans == []


def test_export_none_is_refused(strict_shop, scans):
    silos, _ = strict_shop
    with pytest.raises(PolicyViolation, match="export=none"):
        query("SELECT r.risk, COUNT(*) AS n FROM ref.countries AS r GROUP BY r.risk", silos)
    assert scans == []


def test_allowed_regions_and_per_query_policy(shop, scans):
    silos, _ = shop
    policy = {"lake.items": TablePolicy(allowed_regions=["us"])}
    with pytest.raises(PolicyViolation, match="allowed_regions"):
        query(
            "SELECT i.sku FROM lake.items AS i JOIN lake.orders AS o ON o.order_id = i.order_id "
            "JOIN crm.customers AS c ON c.id = o.customer_id",
            silos,
            policy=policy,
            engine_region="eu",
        )
    assert scans == []
    ok = query(
        "SELECT COUNT(*) AS n FROM lake.items AS i", silos, policy=policy, engine_region="us"
    )
    assert ok.table.num_rows == 1


def test_audit_records_bytes_by_route_and_rule(shop):
    silos, _ = shop
    result = query(
        "SELECT c.segment, o.total FROM crm.customers AS c JOIN lake.orders AS o ON o.customer_id = c.id",
        silos,
        engine_region="us",
    )
    routes = result.bytes_by_route
    assert set(routes) == {("crm", "eu", "us"), ("lake", "us", "us")}
    assert sum(routes.values()) == result.bytes_moved > 0
    assert {f.rule for f in result.fragments} == {"export allowed", "same region (us)"}
