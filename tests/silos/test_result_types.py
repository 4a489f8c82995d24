"""Result types: a silo's answer has the Arrow types DuckDB gives the same SQL over the same
tables, whatever arithmetic the silo did (SQLite sums decimals as doubles; PostgreSQL's
``SUM(numeric(15,2))`` has no precision), so a federated result equals co-located DuckDB's."""

from __future__ import annotations

import decimal
import sqlite3

import duckdb
import pyarrow as pa
import pytest

import fed_assets
from fed_assets.errors import SiloQueryError
from resources.silos.parquet import ParquetSilo
from resources.silos.sqlite import SQLiteSilo
from tests.silos.cases.postgres import connect, silo_for

AGGREGATES = (
    "SELECT p_size, SUM(p_price) AS total, SUM(p_price * (1 - p_discount)) AS net, "
    "AVG(p_price) AS mean, COUNT(*) AS n FROM part GROUP BY p_size ORDER BY p_size"
)
ROWS = [(1, 10, "12.34", "0.05"), (2, 10, "0.29", "0.10"), (3, 20, "901.00", "0.00")]


def _duckdb_answer() -> pa.Table:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE part (p_partkey BIGINT, p_size INT, p_price DECIMAL(15,2), "
        "p_discount DECIMAL(15,2))"
    )
    con.executemany("INSERT INTO part VALUES (?, ?, ?, ?)", ROWS)
    return con.sql(AGGREGATES).to_arrow_table()


@pytest.fixture
def sqlite_silo(tmp_path) -> SQLiteSilo:
    path = tmp_path / "parts.sqlite"
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE part (p_partkey INTEGER, p_size INT, p_price DECIMAL(15,2), "
            "p_discount DECIMAL(15,2))"
        )
        con.executemany(
            "INSERT INTO part VALUES (?, ?, ?, ?)",
            [(k, s, float(p), float(d)) for k, s, p, d in ROWS],
        )
    con.close()
    return SQLiteSilo(name="ref", path=str(path), region="eu")


def test_sqlite_declared_decimals_and_widths_read_as_declared(sqlite_silo):
    expected = pa.schema(
        [
            ("p_partkey", pa.int64()),
            ("p_size", pa.int32()),
            ("p_price", pa.decimal128(15, 2)),
            ("p_discount", pa.decimal128(15, 2)),
        ]
    )
    assert sqlite_silo.schema("part") == expected
    table = sqlite_silo.read("part").read_all()
    assert table.schema == expected
    # Stored as REAL (0.29 is 0.28999...), read back as the decimal the row was written with.
    assert table.column("p_price").to_pylist()[1] == decimal.Decimal("0.29")


def test_sqlite_aggregates_have_duckdb_types(sqlite_silo):
    want = _duckdb_answer()
    got = sqlite_silo.scan(AGGREGATES).read_all()
    assert got.schema.types == want.schema.types
    assert got.column("total").to_pylist() == want.column("total").to_pylist()
    assert got.column("net").to_pylist() == want.column("net").to_pylist()


def test_sqlite_value_wider_than_its_declared_int_is_named(tmp_path):
    path = tmp_path / "wide.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (small INT)")
        con.execute("INSERT INTO t VALUES (?)", (2**40,))
    con.close()
    silo = SQLiteSilo(name="ref", path=str(path), region="eu")
    with pytest.raises(SiloQueryError, match="small") as info:
        silo.read("t").read_all()
    assert "INTEGER" in str(info.value)  # the fix: declare it wider


def test_federated_sqlite_decimal_sum_equals_colocated(sqlite_silo, tmp_path):
    """A join of a SQLite table with a Parquet one: the sum is a decimal, as in DuckDB."""
    lake = tmp_path / "lake"
    lake.mkdir()
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 10 AS s_size, 'small' AS s_label) TO '{lake}/sizes.parquet'")
    silos = {"ref": sqlite_silo, "lake": ParquetSilo(name="lake", root=str(lake), region="eu")}
    sql = (
        "SELECT s.s_label, SUM(p.p_price) AS total FROM ref.part AS p "
        "JOIN lake.sizes AS s ON p.p_size = s.s_size GROUP BY s.s_label"
    )
    result = fed_assets.query(sql, silos)
    assert result.table.schema.field("total").type == pa.decimal128(38, 2)
    assert result.table.column("total").to_pylist() == [decimal.Decimal("12.63")]


def test_postgres_numeric_aggregates_have_duckdb_types(postgres_schema):
    env, schema = postgres_schema
    with connect(env) as con:
        con.execute(
            f'CREATE TABLE "{schema}".part (p_partkey bigint, p_size integer, '
            "p_price numeric(15, 2), p_discount numeric(15, 2))"
        )
        for row in ROWS:
            con.execute(f'INSERT INTO "{schema}".part VALUES (%s, %s, %s, %s)', row)
    silo = silo_for(env, schema)
    want = _duckdb_answer()
    got = silo.scan(AGGREGATES.replace("FROM part", f'FROM "{schema}".part')).read_all()
    assert got.schema.types == want.schema.types
    assert got.column("total").to_pylist() == want.column("total").to_pylist()
    assert got.column("net").to_pylist() == want.column("net").to_pylist()
