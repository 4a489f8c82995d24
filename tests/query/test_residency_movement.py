"""Residency over every movement: member-revealing aggregates, semi-join keys, shipped tables, and
the one check (``fed_assets.residency``) the planner and training share."""

from __future__ import annotations

import pytest

from fed_assets.errors import PolicyViolation
from fed_assets.query import plan, query
from fed_assets.residency import KINDS, check_movement
from fed_assets.silo import SiloPolicy, TablePolicy
from resources.silos.duckdb import DuckDBSilo
from tests.query.compare import assert_same

# Aggregates that return one member's value: a PII column under any of them is a raw column.
REVEALING = [
    "min(email)",
    "max(email)",
    "any_value(email)",
    "first(email)",
    "last(email)",
    "arg_max(email, income)",
    "arg_min(email, income)",
    "string_agg(email, ',')",
    "list(email)",
    "array_agg(email)",
    "mode(email)",
    "quantile_disc(length(email), 0.5)",
    "median(length(email))",
    "histogram(email)",
]


@pytest.mark.parametrize("aggregate", REVEALING)
def test_member_revealing_aggregate_of_pii_is_refused(shop, scans, aggregate):
    silos, _ = shop
    # An aggregate sqlglot does not know (histogram) must be allowed on the silo to get this far.
    crm = silos["crm"].model_copy(update={"allowed_functions": ["histogram"]})
    silos = {**silos, "crm": crm}
    sql = f"SELECT segment, {aggregate} AS v FROM crm.customers GROUP BY segment"
    with pytest.raises(PolicyViolation, match=r"column 'email'.*rule pii"):
        query(sql, silos)
    assert scans == []


def test_max_of_pii_grouped_by_id_is_refused(shop, scans):
    silos, _ = shop
    with pytest.raises(PolicyViolation, match="'email'"):
        query("SELECT id, max(email) AS e FROM crm.customers GROUP BY id", silos)
    assert scans == []


def test_window_aggregate_of_pii_is_a_value_per_row(shop, scans):
    silos, _ = shop
    sql = "SELECT id, count(email) OVER (PARTITION BY email) AS n FROM crm.customers"
    with pytest.raises(PolicyViolation, match="'email'"):
        query(sql, silos)
    assert scans == []


def test_group_by_the_pii_column_itself_is_raw(shop, scans):
    silos, _ = shop
    with pytest.raises(PolicyViolation, match="'email'"):
        query("SELECT count(*) AS n, sum(income) AS s FROM crm.customers GROUP BY email", silos)
    assert scans == []


def test_pii_inside_a_value_hiding_aggregate_leaves_only_in_groups_of_two(shop, scans):
    """``avg(ascii(...)) GROUP BY id`` would spell each address out one group at a time."""
    silos, colocated = shop
    per_customer = "SELECT id, avg(ascii(substr(email, 2, 1))) AS a FROM crm.customers GROUP BY id"
    # The silo's statistics say id is unique (200 distinct of 200 rows): every group is one
    # customer, so the aggregate is that customer's value, and it may not leave.
    with pytest.raises(PolicyViolation, match="email"):
        query(per_customer, silos)
    assert scans == []
    sql = "SELECT country, avg(ascii(substr(email, 2, 1))) AS a FROM crm.customers GROUP BY 1"
    result = query(sql, silos)
    (fragment,) = result.fragments
    assert "HAVING COUNT(*) >= 2" in fragment.sql and "groups ≥ 2" in fragment.rule
    expected = colocated.sql(sql + " HAVING count(*) >= 2").to_arrow_table()
    assert 0 < result.table.num_rows == expected.num_rows
    assert_same(result.table, expected, sql)
    segments = "SELECT segment, COUNT(DISTINCT email) AS people FROM crm.customers GROUP BY segment"
    assert_same(query(segments, silos).table, colocated.sql(segments).to_arrow_table(), segments)


def test_aggregates_only_refuses_member_revealing_aggregates(strict_shop, scans):
    silos, _ = strict_shop
    with pytest.raises(PolicyViolation, match="aggregates_only"):
        query("SELECT status, max(total) AS top FROM lake.orders GROUP BY status", silos)
    assert scans == []


def test_aggregates_only_with_group_size_one_still_hides_single_rows(shop):
    silos, _ = shop
    policy = {"lake.orders": TablePolicy(export="aggregates_only")}  # min_group_size 1
    result = query(
        "SELECT order_id, sum(total) AS t FROM lake.orders GROUP BY order_id", silos, policy=policy
    )
    assert result.table.num_rows == 0
    assert all(r.rows == 0 for r in result.routes)


# ---------------------------------------------------------------------------- semi-join keys

NIGERIA = (
    "SELECT c.segment, o.total FROM crm.customers AS c JOIN lake.orders AS o "
    "ON o.customer_id = c.id WHERE c.country = 'NG'"
)
NIGERIA_IN = (
    "SELECT o.order_id, o.total FROM lake.orders AS o "
    "WHERE o.customer_id IN (SELECT id FROM crm.customers WHERE country = 'NG')"
)


@pytest.mark.parametrize("sql", [NIGERIA, NIGERIA_IN])
def test_keys_sent_into_another_region_are_audited(shop, sql):
    silos, colocated = shop
    result = query(sql, silos, engine_region="eu")
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)
    (keys,) = [r for r in result.routes if r.kind == "keys"]
    assert (keys.silo, keys.source_region, keys.destination_region) == ("crm", "eu", "us")
    assert (
        keys.rows
        == colocated.sql("SELECT count(*) FROM crm.customers WHERE country = 'NG'").fetchall()[0][0]
    )
    assert keys.bytes > 0 and keys.rule == "export allowed"
    assert result.bytes_by_route[("crm", "eu", "us")] == keys.bytes


@pytest.mark.parametrize("sql", [NIGERIA, NIGERIA_IN])
def test_pii_join_key_never_leaves_its_region_as_keys(shop, sql):
    """With the join key PII, the join runs in the engine's region (eu), where the key may go."""
    silos, colocated = shop
    policy = {"crm.customers": TablePolicy(pii_columns=["id"])}
    result = query(sql, silos, engine_region="eu", policy=policy)
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)
    assert result.plan.semi_joins == ()
    assert [r for r in result.routes if r.kind == "keys"] == []
    assert {r.destination_region for r in result.routes if r.silo == "crm"} == {"eu"}
    lake = next(f for f in result.fragments if f.silo == "lake")
    assert lake.semi_join_keys is None and " IN " not in lake.sql.upper()


def test_pii_join_key_refused_where_no_region_may_join(shop, scans):
    silos, _ = shop
    policy = {"crm.customers": TablePolicy(pii_columns=["id"])}
    with pytest.raises(PolicyViolation, match="'id'"):
        query(NIGERIA, silos, engine_region="us", policy=policy)
    assert scans == []


def test_keys_refused_for_an_aggregates_only_source(shop):
    silos, _ = shop
    policy = {"crm.customers": TablePolicy(export="aggregates_only", min_group_size=2)}
    sql = (
        "SELECT o.status, COUNT(*) AS n FROM lake.orders AS o JOIN "
        "(SELECT country, COUNT(*) AS k FROM crm.customers GROUP BY country) AS c "
        "ON o.status = c.country GROUP BY o.status"
    )
    allowed = plan(sql, silos, engine_region="eu")
    assert any(sj.source_column == "country" for sj in allowed.semi_joins)  # keys, normally
    result = query(sql, silos, engine_region="eu", policy=policy)
    assert [r for r in result.routes if r.kind == "keys"] == []


# ---------------------------------------------------------------------------- the one check


@pytest.fixture
def bank(tmp_path):
    return DuckDBSilo(
        name="bank",
        path=str(tmp_path / "bank.duckdb"),
        region="eu",
        policy=SiloPolicy(
            pii_columns=["customers.email"],
            tables={
                "ledger": TablePolicy(export="none"),
                "stats": TablePolicy(export="aggregates_only", min_group_size=10),
            },
        ),
    )


def test_check_movement_decides_every_kind(bank):
    ok = check_movement(bank, "customers", ["segment"], kind="rows", destination_region="us")
    assert (ok.kind, ok.silo, ok.source_region, ok.destination_region, ok.rule) == (
        "rows",
        "bank",
        "eu",
        "us",
        "export allowed",
    )
    same = check_movement(bank, "customers", ["email"], kind="rows", destination_region="eu")
    assert same.rule == "same region (eu)"
    for kind in ("rows", "keys", "shipped", "aggregates"):
        with pytest.raises(PolicyViolation, match="'Email'.*rule pii"):
            check_movement(bank, "customers", ["Email"], kind=kind, destination_region="us")
    hidden = check_movement(
        bank,
        "customers",
        ["segment"],
        kind="aggregates",
        destination_region=None,
        aggregated=["email"],
    )
    assert "PII only inside aggregates, groups ≥ 2" in hidden.rule
    assert hidden.destination_region == "engine"
    for kind in ("rows", "keys", "shipped", "aggregates"):
        with pytest.raises(PolicyViolation, match="export=none"):
            check_movement(bank, "ledger", [], kind=kind, destination_region="us")
    weights = check_movement(bank, "ledger", ["amount"], kind="weights", destination_region="us")
    assert weights.rule == "model weights carry no rows"
    with pytest.raises(PolicyViolation, match="aggregates_only"):
        check_movement(bank, "stats", ["x"], kind="rows", destination_region="us")
    agg = check_movement(bank, "stats", ["g"], kind="aggregates", destination_region="us")
    assert agg.rule == "stats: aggregates only, groups ≥ 10"
    assert agg.moved(3, 120, via="job").bytes == 120
    with pytest.raises(ValueError, match="kind"):
        check_movement(bank, "stats", [], kind="files", destination_region="us")
    assert set(KINDS) == {"rows", "aggregates", "keys", "shipped", "weights"}


def test_allowed_regions_hold_for_keys(bank):
    limited = bank.model_copy(update={"policy": SiloPolicy(allowed_regions=["eu", "ch"])})
    assert check_movement(limited, "t", ["k"], kind="keys", destination_region="ch").rule
    with pytest.raises(PolicyViolation, match="allowed_regions"):
        check_movement(limited, "t", ["k"], kind="keys", destination_region="us")


@pytest.mark.parametrize(
    "aggregate",
    [
        "sum(CASE WHEN id = 7 THEN ascii(substr(email, 1, 1)) END)",
        "avg(ascii(substr(email, 1, 1)) * CAST(id = 7 AS INTEGER))",
        "count(CASE WHEN email LIKE 'c7@%' THEN 1 END)",
        "sum(nullif(length(email), 11))",
    ],
)
def test_an_aggregate_whose_argument_picks_rows_is_raw(shop, scans, aggregate):
    """A condition inside the aggregate selects one row whatever the group's size."""
    silos, _ = shop
    with pytest.raises(PolicyViolation, match="'email'"):
        query(f"SELECT segment, {aggregate} AS v FROM crm.customers GROUP BY segment", silos)
    assert scans == []


def test_a_count_filtered_on_pii_leaves_only_for_groups_of_two(shop):
    """``WHERE email = ...`` with a count would tell whether one person is a customer."""
    silos, colocated = shop
    one = "SELECT count(*) AS n FROM crm.customers WHERE email = 'c7@example.eu'"
    result = query(one, silos)
    assert result.table.num_rows == 0 and "HAVING COUNT(*) >= 2" in result.fragments[0].sql
    many = (
        "SELECT segment, count(*) AS n FROM crm.customers WHERE email LIKE 'c1%' GROUP BY segment"
    )
    assert_same(query(many, silos).table, colocated.sql(many).to_arrow_table(), many)


@pytest.fixture
def newsletter(shop, tmp_path):
    """A US silo holding 400 addresses, 40 of them the EU customers' (the issue's case)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from resources.silos.parquet import ParquetSilo

    silos, colocated = shop
    emails = [f"c{i}@example.eu" for i in range(1, 41)] + [f"x{i}@elsewhere.us" for i in range(360)]
    table = pa.table({"email": emails, "opened": [i % 3 for i in range(400)]})
    pq.write_table(table, tmp_path / "newsletter.parquet")
    colocated.execute("CREATE SCHEMA IF NOT EXISTS mail")
    colocated.register("src", table)
    colocated.execute("CREATE OR REPLACE TABLE mail.newsletter AS SELECT * FROM src")
    colocated.unregister("src")
    mail = ParquetSilo(name="mail", root=str(tmp_path), region="us")
    return {**silos, "mail": mail}, colocated


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT c.segment, n.opened FROM crm.customers AS c JOIN mail.newsletter AS n "
        "ON n.email = c.email WHERE c.id <= 40",
        "SELECT n.opened FROM mail.newsletter AS n "
        "WHERE n.email IN (SELECT email FROM crm.customers WHERE id <= 40)",
    ],
)
def test_eu_addresses_never_go_into_a_us_silo_as_keys(newsletter, sql):
    silos, colocated = newsletter
    result = query(sql, silos, engine_region="eu")
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)
    assert [r for r in result.routes if r.kind == "keys"] == []
    mail = next(f for f in result.fragments if f.silo == "mail")
    assert mail.semi_join_keys is None and "example.eu" not in mail.sql
    assert {r.destination_region for r in result.routes if r.silo == "crm"} == {"eu"}
    with pytest.raises(PolicyViolation, match="'email'"):
        query(sql, silos, engine_region="us")  # no region may join them: refused


def test_without_the_pii_rule_those_addresses_would_go_as_keys(newsletter):
    """The test above can fail: the same join, email not personal, sends the 40 as keys."""
    silos, _ = newsletter
    crm = silos["crm"].model_copy(update={"policy": SiloPolicy()})
    result = query(
        "SELECT c.segment, n.opened FROM crm.customers AS c JOIN mail.newsletter AS n "
        "ON n.email = c.email WHERE c.id <= 40",
        {**silos, "crm": crm},
        engine_region="eu",
    )
    (keys,) = [r for r in result.routes if r.kind == "keys"]
    assert (keys.silo, keys.destination_region, keys.rows) == ("crm", "us", 40)
