"""Errors that say what is wrong: the corrupt file by name on every path, a write by what it is
wherever it hides, an ambiguous column with the tables that have it, out of memory with the
setting and the sizes."""

from __future__ import annotations

import shutil

import pytest

from fed_assets.errors import CorruptDataError, ReadOnlyViolation
from fed_assets.query import AmbiguousColumnError, ResidualQueryError, query
from fed_assets.query.execute import execute
from fed_assets.query.planner import plan
from tests.query.conftest import build_shop


def garble_footer(data: bytearray) -> None:
    data[-12:-8] = b"\xff\xff\xff\xff"  # inside the Thrift footer, before its length


def garble_metadata(data: bytearray) -> None:
    length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - length
    data[start : start + 16] = b"\xff" * 16  # the footer's first fields: varints that never end


@pytest.fixture(params=[garble_footer, garble_metadata], ids=["footer", "metadata"])
def broken_shop(request, tmp_path):
    silos, _ = build_shop(tmp_path)
    broken = tmp_path / "lake" / "orders" / "part-1.parquet"
    data = bytearray(broken.read_bytes())
    request.param(data)
    broken.write_bytes(bytes(data))
    yield silos, str(broken)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_corrupt_parquet_is_named_by_file_in_every_path(broken_shop):
    silos, broken = broken_shop
    lake = silos["lake"]
    paths = {
        "scan": lambda: lake.scan("SELECT * FROM orders").read_all(),
        "read": lambda: lake.read("orders", where="total > 10").read_all(),
        "query": lambda: query(
            "SELECT status, COUNT(*) AS n FROM lake.orders GROUP BY status", silos
        ),
        "join": lambda: query(
            "SELECT c.segment, o.total FROM lake.orders AS o JOIN crm.customers AS c "
            "ON c.id = o.customer_id",
            silos,
            engine_region="us",
        ),
        "stats": lambda: lake.stats("orders"),
    }
    for name, run in paths.items():
        with pytest.raises(CorruptDataError) as info:
            run()
        message = str(info.value)
        assert broken in message and "table 'orders'" in message, name
        assert "rewrite the file" in message, name


def test_a_write_is_named_wherever_it_hides(shop, scans):
    silos, _ = shop
    for sql, named in [
        (
            "WITH d AS (DELETE FROM crm.customers RETURNING *) SELECT * FROM d",
            "a DELETE statement in the WITH clause 'd'",
        ),
        (
            "WITH u AS (UPDATE crm.customers SET income = 0 RETURNING id) SELECT * FROM u",
            "a UPDATE statement in the WITH clause 'u'",
        ),
        ("DELETE FROM crm.customers", "'DELETE' statements are refused"),
        ("SELECT * INTO copy FROM crm.customers", "SELECT ... INTO"),
    ]:
        with pytest.raises(ReadOnlyViolation) as info:
            query(sql, silos)
        assert named in str(info.value), sql
    assert scans == []


def test_a_column_two_joined_tables_have_is_called_ambiguous(shop, scans):
    silos, _ = shop
    with pytest.raises(AmbiguousColumnError) as info:
        query(
            "SELECT country_name FROM ref.countries AS a JOIN ref.countries AS b ON a.code = b.code",
            silos,
        )
    message = str(info.value)
    assert "ambiguous" in message and "a (ref.countries), b (ref.countries)" in message
    assert "a.country_name" in message
    with pytest.raises(AmbiguousColumnError, match=r"o \(lake.orders\), i \(lake.items\)"):
        query(
            "SELECT order_id FROM lake.orders AS o JOIN lake.items AS i ON o.order_id = i.order_id",
            silos,
        )
    assert scans == []


def test_out_of_memory_names_the_setting_and_the_sizes(shop):
    silos, _ = shop
    sql = (
        "SELECT c.segment, string_agg(o.status || c.country || CAST(o.total AS VARCHAR), ',') "
        "AS s FROM crm.customers AS c, lake.orders AS o GROUP BY c.segment"
    )
    with pytest.raises(ResidualQueryError) as info:
        execute(plan(sql, silos), silos, memory_limit="1MB")
    message = str(info.value)
    assert "out of memory" in message and "memory_limit=1MB" in message
    assert "inputs hold" in message and "the plan estimated" in message
    assert "memory_limit='8GB'" in message
    assert query(sql, silos, memory_limit="256MB").table.num_rows == 3
