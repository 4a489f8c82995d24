"""Filters as expressions: a ``where`` cannot break out of its parentheses, hold a statement or
a subquery, or call a function off the allow-list; checked before any SQL reaches a silo."""

from __future__ import annotations

import dagster as dg
import pytest
from sqlglot import exp

from fed_assets.errors import (
    QuerySyntaxError,
    ReadOnlyViolation,
    UnknownColumnError,
    UnsafeFunctionError,
)
from fed_assets.filters import combine, parse_condition
from fed_assets.query import query
from fed_assets.silo import SiloResource
from tests.io_managers.test_silo_io_manager import COUNTRIES, defs_for, loaded_sql, run, silo

__all__ = ["silo"]  # the IO manager tests' DuckDB silo fixture, reused


@pytest.fixture
def scans(monkeypatch):
    """Every SQL statement a silo is asked to run (spying on the real silos)."""
    seen: list[str] = []
    real = SiloResource.scan

    def spy(self, sql):
        seen.append(sql)
        return real(self, sql)

    monkeypatch.setattr(SiloResource, "scan", spy)
    return seen


def partitioned(where: str):
    @dg.asset(
        partitions_def=COUNTRIES,
        ins={
            "orders": dg.AssetIn(
                key=["shop", "orders"], metadata={"partition_column": "country", "where": where}
            )
        },
    )
    def country_orders(orders):
        return orders

    return country_orders


def test_where_that_closes_its_parenthesis_is_refused_not_widened(silo, tmp_path, scans):
    asset = partitioned("1=1) OR (1=1")
    with pytest.raises(QuerySyntaxError, match=r"silo 'shop', table 'orders'.*does not parse"):
        run(defs_for(silo, tmp_path, asset), asset, partition_key="DE")
    assert scans == []


def test_or_inside_a_where_stays_inside_the_partition(silo, tmp_path):
    asset = partitioned("total > 100 OR total < 10")
    result = run(defs_for(silo, tmp_path, asset), asset, partition_key="FR")
    table = result.output_for_node("country_orders")
    assert table.num_rows > 0 and set(table.column("country").to_pylist()) == {"FR"}
    assert '("total" > 100 OR "total" < 10) AND "country" IN (\'FR\')' in loaded_sql(result)


@pytest.mark.parametrize(
    ("where", "error", "message"),
    [
        ("total > 1; DROP TABLE orders", QuerySyntaxError, "2 statements"),
        ("total > 1; SELECT 1", QuerySyntaxError, "2 statements"),
        ("id IN (SELECT id FROM orders)", QuerySyntaxError, "subquery"),
        ("secret > 1", UnknownColumnError, "column 'secret'"),
        ("length(getenv('HOME')) > 0", UnsafeFunctionError, r"getenv\(\).*allowed_functions"),
        ("length(read_text('/etc/passwd')::VARCHAR) > 0", UnsafeFunctionError, "read_text"),
    ],
)
def test_bad_where_is_named_before_the_silo_runs_anything(silo, scans, where, error, message):
    with pytest.raises(error, match=message):
        silo.read("orders", where=where)
    assert scans == []


def test_conditions_combine_as_trees():
    a = parse_condition("x = 1 OR y = 2", columns=["X", "y"], where="t")
    b = parse_condition(exp.column("y").isin("a"), columns=["X", "y"], where="t")
    assert combine(a, None, b).sql() == '("X" = 1 OR "y" = 2) AND "y" IN (\'a\')'
    assert combine() is None


# ---------------------------------------------------------------------------- PostgreSQL


def test_pg_read_file_never_reaches_postgres(postgres_case, scans):
    silo = postgres_case.silo
    with pytest.raises(UnsafeFunctionError, match=r"silo 'pg'.*pg_read_file\(\)"):
        silo.read("people", where="length(pg_read_file('/etc/passwd')) > 0")
    for sql in (
        "SELECT pg_read_file('/etc/passwd') AS f",
        "SELECT name FROM people WHERE pg_sleep(1) IS NULL",
    ):
        with pytest.raises(UnsafeFunctionError, match="allow-list"):
            silo.scan(sql)
    with pytest.raises(UnsafeFunctionError, match=r"query, function pg_read_file\(\)"):
        query("SELECT name FROM pg.people WHERE pg_read_file('/etc/passwd') <> ''", [silo])
    assert len(scans) == 2  # the two refused scans themselves; none ran in the server
    with pytest.raises(UnsafeFunctionError, match="quote_ident"):
        silo.read("people", where="quote_ident(name) <> ''")
    allowed = silo.model_copy(update={"allowed_functions": ["quote_ident"]})
    where = "quote_ident(name) <> '' OR name IS NULL"
    assert allowed.read("people", where=where).read_all().num_rows == 5


def test_write_hidden_in_a_cte_is_named(postgres_case):
    silo = postgres_case.silo
    with pytest.raises(ReadOnlyViolation, match=r"a DELETE statement in the WITH clause 'd'"):
        silo.scan("WITH d AS (DELETE FROM people RETURNING *) SELECT * FROM d")
    with pytest.raises(ReadOnlyViolation, match=r"a DELETE statement in the WITH clause 'd'"):
        query("WITH d AS (DELETE FROM pg.people RETURNING *) SELECT * FROM d", [silo])
    assert silo.read("people").read_all().num_rows == 5
