"""Shipping small sides into the big side's silo: the residual query runs there, and only its
result leaves — unless a policy keeps a small side out of that silo's region."""

from __future__ import annotations

import sqlite3

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fed_assets.errors import ConfigurationError
from fed_assets.query import plan, query
from fed_assets.silo import SiloPolicy
from resources.silos.duckdb import DuckDBSilo
from resources.silos.parquet import ParquetSilo
from resources.silos.sqlite import SQLiteSilo
from tests.query.compare import assert_same

N_EVENTS = 150_000
SQL = (
    "SELECT u.country, k.label, COUNT(*) AS n, SUM(e.amount) AS total FROM lake.events AS e "
    "JOIN crm.users AS u ON e.user_id = u.id JOIN ref.kinds AS k ON e.kind_id = k.id "
    "WHERE k.label IN ('fee', 'cash') GROUP BY 1, 2"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ship")
    rng = np.random.default_rng(7)
    events = pa.table(
        {
            "user_id": pa.array(rng.integers(1, 1_001, N_EVENTS), pa.int64()),
            "kind_id": pa.array(rng.integers(1, 6, N_EVENTS), pa.int64()),
            "amount": rng.integers(1, 10_000, N_EVENTS) / 100.0,
        }
    )
    users = pa.table(
        {
            "id": pa.array(np.arange(1, 1_001), pa.int64()),
            "country": rng.choice(["DE", "FR", "US", "GB"], 1_000),
        }
    )
    kinds = [(1, "card"), (2, "transfer"), (3, "refund"), (4, "cash"), (5, "fee")]
    (root / "lake").mkdir()
    pq.write_table(events, root / "lake" / "events.parquet")
    with duckdb.connect(str(root / "crm.duckdb")) as con:
        con.register("src", users)
        con.execute("CREATE TABLE users AS SELECT * FROM src")
    with sqlite3.connect(root / "ref.sqlite") as con:
        con.execute("CREATE TABLE kinds (id INTEGER, label TEXT)")
        con.executemany("INSERT INTO kinds VALUES (?, ?)", kinds)
    con.close()
    colocated = duckdb.connect()
    for schema, name, table in (
        ("lake", "events", events),
        ("crm", "users", users),
        ("ref", "kinds", pa.table({"id": [k[0] for k in kinds], "label": [k[1] for k in kinds]})),
    ):
        colocated.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        colocated.register("src", table)
        colocated.execute(f"CREATE TABLE {schema}.{name} AS SELECT * FROM src")
        colocated.unregister("src")

    def silos(crm_policy: SiloPolicy | None = None, eu_usd_per_gb: float = 0.09) -> dict:
        return {
            "lake": ParquetSilo(
                name="lake", root=str(root / "lake"), region="us", egress_usd_per_gb=0.09
            ),
            "crm": DuckDBSilo(
                name="crm",
                path=str(root / "crm.duckdb"),
                region="eu",
                policy=crm_policy or SiloPolicy(),
                egress_usd_per_gb=eu_usd_per_gb,
            ),
            "ref": SQLiteSilo(
                name="ref",
                path=str(root / "ref.sqlite"),
                region="eu",
                egress_usd_per_gb=eu_usd_per_gb,
            ),
        }

    return silos, colocated


def test_small_sides_ship_into_the_lake_and_only_the_result_leaves(world):
    silos, colocated = world
    result = query(SQL, silos())
    assert result.plan.shipped_to == "lake"
    assert_same(result.table, colocated.sql(SQL).to_arrow_table(), SQL)
    runs = {f.silo: f for f in result.fragments}
    # crm and ref go to the lake's region; the lake sends only the joined result to the engine,
    # its own fragment filtered there by the kinds' keys (all 1,000 users are a whole table: their
    # keys would filter nothing).
    assert runs["crm"].destination_region == runs["ref"].destination_region == "us"
    assert runs["lake"].id == "__shipped"
    assert runs["lake"].rows == result.table.num_rows
    assert result.table.num_rows == 8  # 4 countries × 2 kinds
    assert runs["lake"].semi_join_keys == runs["ref"].rows
    assert result.bytes_moved < 50_000  # the events table alone is 3.6 MB of Arrow
    assert "shipped into silo 'lake'" in runs["crm"].rule
    assert ("lake", "us", "engine") in result.bytes_by_route
    assert "runs in silo lake" in result.explain()


def test_a_policy_that_keeps_a_small_side_out_of_the_lake_region_keeps_the_ordinary_plan(world):
    silos, colocated = world
    kept = silos(SiloPolicy(allowed_regions=["eu"]))
    planned = plan(SQL, kept, engine_region="eu")
    assert planned.shipped_to is None
    result = query(SQL, kept, engine_region="eu")
    assert_same(result.table, colocated.sql(SQL).to_arrow_table(), SQL)
    assert {f.destination_region for f in result.fragments} == {"eu"}


def test_the_money_objective_weighs_egress_prices_where_latency_weighs_bytes(world):
    silos, colocated = world
    # Egress out of the EU priced far above the lake's: shipping the small EU sides into the US
    # lake now costs more than pulling the lake's side into an EU engine.
    dear = silos(eu_usd_per_gb=500.0)
    assert plan(SQL, dear, engine_region="eu").shipped_to == "lake"
    assert plan(SQL, dear, engine_region="eu", objective="money").shipped_to is None
    assert plan(SQL, silos(), engine_region="eu", objective="money").shipped_to == "lake"
    result = query(SQL, dear, engine_region="eu", objective="money")
    assert_same(result.table, colocated.sql(SQL).to_arrow_table(), SQL)
    assert all(f.destination_region == "eu" for f in result.fragments)


def test_an_unknown_objective_is_refused(world):
    silos, _ = world
    with pytest.raises(ConfigurationError, match="objective 'cheapest'"):
        plan(SQL, silos(), objective="cheapest")


def test_shipped_tables_and_their_keys_are_audit_routes(world):
    silos, _ = world
    result = query(SQL, silos())
    kinds = {(r.kind, r.silo, r.source_region, r.destination_region) for r in result.routes}
    assert ("shipped", "crm", "eu", "us") in kinds and ("shipped", "ref", "eu", "us") in kinds
    assert ("keys", "ref", "eu", "us") in kinds and ("rows", "lake", "us", "engine") in kinds
    assert ("keys", "crm", "eu", "us") not in kinds  # every user's id: no filter, not sent
    assert all(r.rule and r.bytes is not None for r in result.routes)
    assert sum(r.bytes for r in result.routes) == result.bytes_moved


def test_a_pii_join_key_is_neither_shipped_nor_sent_as_keys_out_of_its_region(world):
    """users.id personal: in an EU engine the join happens in the EU, and no id goes to the US."""
    silos, colocated = world
    private = silos(SiloPolicy(pii_columns=["users.id"]))
    result = query(SQL, private, engine_region="eu")
    assert result.plan.shipped_to is None
    crm_ids = {f.id for f in result.plan.fragments if f.silo == "crm"}
    assert not [sj for sj in result.plan.semi_joins if sj.source in crm_ids]
    assert [r.kind for r in result.routes if r.silo == "ref"].count("keys") == 1  # ref may
    assert_same(result.table, colocated.sql(SQL).to_arrow_table(), SQL)
    crm = [r for r in result.routes if r.silo == "crm"]
    assert crm and {(r.kind, r.destination_region) for r in crm} == {("rows", "eu")}
