"""Pricing what is pushed whole: PostgreSQL's EXPLAIN cost for a same-silo join, set against
moving its tables, keeps a join the silo would run slowly in the embedded engine, says so in the
plan, and gives the co-located answer either way."""

from __future__ import annotations

import duckdb
import pytest

import resources.silos.postgres as postgres_module
from fed_assets.query import plan, query
from tests.query.compare import assert_same
from tests.silos.cases.postgres import connect, silo_for

JOIN = (
    "SELECT c.segment, COUNT(o.id) AS n, SUM(o.amount) AS total FROM pg.customers AS c "
    "LEFT JOIN pg.orders AS o ON o.customer_id = c.id GROUP BY c.segment ORDER BY c.segment"
)


@pytest.fixture
def shop_pg(postgres_schema):
    env, schema = postgres_schema
    with connect(env) as con:
        con.execute(f'CREATE TABLE "{schema}".customers (id bigint primary key, segment text)')
        con.execute(
            f'CREATE TABLE "{schema}".orders (id bigint, customer_id bigint, amount double precision)'
        )
        con.execute(
            f"INSERT INTO \"{schema}\".customers SELECT g, CASE WHEN g % 3 = 0 THEN 'retail' "
            "ELSE 'business' END FROM generate_series(1, 300) AS g"
        )
        con.execute(
            f'INSERT INTO "{schema}".orders SELECT g, g % 350, g * 1.5 FROM generate_series(1, 3000) AS g'
        )
        con.execute(f'ANALYZE "{schema}".customers')
        con.execute(f'ANALYZE "{schema}".orders')
    silo = silo_for(env, schema)
    colocated = duckdb.connect()
    colocated.execute("CREATE SCHEMA pg")
    for table in ("customers", "orders"):
        data = silo.read(table).read_all()  # noqa: F841 (read by DuckDB's replacement scan)
        colocated.execute(f"CREATE TABLE pg.{table} AS SELECT * FROM data")
    return {"pg": silo}, colocated


def test_explain_cost_is_an_estimate_in_seconds(shop_pg):
    silos, _ = shop_pg
    silo = silos["pg"]
    sql = f"SELECT count(*) FROM {silo.table_expression('orders').sql('postgres')}"
    seconds = silo.execution_seconds(sql)
    assert seconds is not None and 0 < seconds < 1  # 3,000 rows: PostgreSQL prices it cheap
    assert silo.execution_seconds("SELECT * FROM no_such_table") is None


def test_a_join_postgres_prices_cheap_runs_there_whole(shop_pg):
    silos, colocated = shop_pg
    planned = plan(JOIN, silos)
    assert len(planned.fragments) == 1 and planned.decisions == ()
    assert_same(query(JOIN, silos).table, colocated.sql(JOIN).to_arrow_table(), JOIN)


def test_a_join_postgres_prices_dear_is_joined_in_the_engine(shop_pg, monkeypatch):
    """As if each cost unit took a second: the silo's estimate is far above moving 3,300 rows."""
    silos, colocated = shop_pg
    monkeypatch.setattr(postgres_module, "SECONDS_PER_COST_UNIT", 1.0)
    silos["pg"]._explained.clear()
    planned = plan(JOIN, silos)
    assert sorted(f.tables for f in planned.fragments) == [("customers",), ("orders",)]
    (decision,) = planned.decisions
    assert "silo 'pg' estimates" in decision and "joined in the embedded engine" in decision
    assert "Decided at planning:" in planned.explain()
    result = query(JOIN, silos)
    assert_same(result.table, colocated.sql(JOIN).to_arrow_table(), JOIN)
    assert decision in result.decisions
