"""Bad input to a federated query: a correct result or a clear FedAssetsError, never a traceback
from a driver and never a partial result."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from fed_assets.errors import (
    FedAssetsError,
    QuerySyntaxError,
    ReadOnlyViolation,
    SiloQueryError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownSiloError,
    UnknownTableError,
)
from fed_assets.query import AmbiguousColumnError, plan, query
from fed_assets.query.rules.check_join_types import JoinTypeError
from tests.query.compare import assert_same


def test_syntax_error_gives_the_position(shop):
    silos, _ = shop
    with pytest.raises(QuerySyntaxError) as info:
        plan("SELECT id FROM crm.customers WHERE (", silos)
    assert "line 1" in str(info.value) and "col" in str(info.value)


def test_unknown_silo_lists_the_configured_ones(shop):
    silos, _ = shop
    with pytest.raises(UnknownSiloError) as info:
        plan("SELECT * FROM warehouse.orders", silos)
    assert "warehouse" in str(info.value) and "crm" in str(info.value)


def test_table_without_silo_prefix(shop):
    silos, _ = shop
    with pytest.raises(UnknownSiloError, match="<silo>.customers"):
        plan("SELECT * FROM customers", silos)


def test_unknown_table_names_silo_and_table(shop):
    silos, _ = shop
    with pytest.raises(UnknownTableError) as info:
        plan("SELECT * FROM lake.invoices", silos)
    assert (
        "lake" in str(info.value) and "invoices" in str(info.value) and "orders" in str(info.value)
    )


def test_unknown_column(shop):
    silos, _ = shop
    with pytest.raises(UnknownColumnError, match="discount"):
        plan("SELECT o.discount FROM lake.orders AS o", silos)


def test_ambiguous_column(shop):
    silos, _ = shop
    with pytest.raises(AmbiguousColumnError) as info:
        plan(
            "SELECT order_id FROM lake.orders AS o JOIN lake.items AS i ON i.order_id = o.order_id",
            silos,
        )
    assert "lake.orders" in str(info.value) and "lake.items" in str(info.value)


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM lake.orders",
        "DROP TABLE crm.customers",
        "CREATE TABLE crm.x AS SELECT 1",
        "INSERT INTO crm.customers SELECT * FROM crm.customers",
        "SELECT 1; SELECT 2",
    ],
)
def test_writes_are_refused(shop, sql):
    silos, _ = shop
    with pytest.raises(ReadOnlyViolation):
        plan(sql, silos)


def test_join_keys_of_different_types_explain_the_cast(shop):
    silos, _ = shop
    with pytest.raises(JoinTypeError, match="CAST") as info:
        query("SELECT c.id FROM crm.customers AS c JOIN ref.countries AS r ON r.code = c.id", silos)
    assert "crm.customers.id" in str(info.value) and "ref.countries.code" in str(info.value)


def test_cast_join_keys_work(shop):
    silos, colocated = shop
    sql = "SELECT c.id, r.code FROM crm.customers AS c JOIN ref.countries AS r ON r.code = CAST(c.id AS TEXT)"
    assert_same(query(sql, silos).table, colocated.sql(sql).to_arrow_table(), sql)


def test_null_join_keys_never_match(shop):
    silos, colocated = shop
    sql = (
        "SELECT COUNT(*) AS n FROM lake.orders AS o JOIN crm.customers AS c ON c.id = o.customer_id"
    )
    result = query(sql, silos).table
    assert_same(result, colocated.sql(sql).to_arrow_table(), sql)
    nulls = colocated.sql("SELECT COUNT(*) FROM lake.orders WHERE customer_id IS NULL").fetchall()
    assert nulls[0][0] > 0  # the data does have NULL keys


def test_duplicate_output_names_are_refused(shop):
    silos, _ = shop
    with pytest.raises(QuerySyntaxError, match="duplicate output column 'id'"):
        plan(
            "SELECT c.id, c2.id FROM crm.customers AS c JOIN crm.customers AS c2 ON c.id = c2.id",
            silos,
        )


def test_quoted_and_unicode_identifiers(shop):
    silos, colocated = shop
    sql = (
        'SELECT "Ländercode", COUNT(*) AS "Anzahl Kunden" FROM (SELECT country AS "Ländercode" '
        'FROM crm.customers) AS "Ü" JOIN ref.countries AS r ON r.code = "Ü"."Ländercode" '
        "GROUP BY 1 ORDER BY 1"
    )
    assert_same(query(sql, silos).table, colocated.sql(sql).to_arrow_table(), sql)


def test_huge_in_list(shop):
    silos, colocated = shop
    ids = ", ".join(str(i) for i in range(0, 20_000, 3))
    sql = f"SELECT o.order_id, c.segment FROM lake.orders AS o JOIN crm.customers AS c ON c.id = o.customer_id WHERE o.order_id IN ({ids})"
    assert_same(query(sql, silos).table, colocated.sql(sql).to_arrow_table(), sql)


def test_empty_inputs_give_an_empty_typed_result(shop):
    silos, colocated = shop
    sql = (
        "SELECT c.segment, SUM(o.total) AS total FROM lake.orders AS o JOIN crm.customers AS c "
        "ON c.id = o.customer_id WHERE o.total < 0 GROUP BY c.segment"
    )
    result = query(sql, silos).table
    assert result.num_rows == 0 and result.column_names == ["segment", "total"]


def test_silo_down_mid_query_names_the_silo(shop, tmp_path):
    silos, _ = shop
    moved = tmp_path / "crm.duckdb"
    shutil.copy(silos["crm"].path, moved)
    crm = silos["crm"].model_copy(update={"path": str(moved)})
    planned_silos = {**silos, "crm": crm}
    planned = plan(
        "SELECT c.segment, o.total FROM crm.customers AS c JOIN lake.orders AS o ON o.customer_id = c.id",
        planned_silos,
    )
    moved.unlink()  # the silo goes down between planning and running
    from fed_assets.query import execute

    with pytest.raises(SiloUnreachableError) as info:
        execute(planned, planned_silos)
    assert "crm" in str(info.value)


def test_transient_failure_is_retried(shop, tmp_path):
    silos, colocated = shop
    path = tmp_path / "late.duckdb"
    shutil.copy(silos["crm"].path, path)
    crm = silos["crm"].model_copy(update={"path": str(path)})
    planned = plan(
        "SELECT COUNT(*) AS n FROM crm.customers AS c JOIN lake.orders AS o ON o.customer_id = c.id",
        {**silos, "crm": crm},
    )
    hidden = tmp_path / "hidden.duckdb"
    path.rename(hidden)
    threading.Timer(0.2, lambda: hidden.rename(path)).start()  # back after a blip
    from fed_assets.query import execute

    result = execute(planned, {**silos, "crm": crm})
    crm_run = next(f for f in result.fragments if f.silo == "crm")
    assert crm_run.attempts >= 2
    sql = (
        "SELECT COUNT(*) AS n FROM crm.customers AS c JOIN lake.orders AS o ON o.customer_id = c.id"
    )
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)


def test_fragment_timeout_names_the_silo(shop):
    silos, _ = shop
    with pytest.raises(
        SiloQueryError,
        match=r"fragment __f\d: no result within its time bound of 0 s \(timeout_s=0",
    ):
        query(
            "SELECT o.total, c.segment FROM lake.orders AS o JOIN crm.customers AS c ON c.id = o.customer_id",
            silos,
            timeout_s=0.0,
        )


def test_errors_are_fed_assets_errors_not_driver_errors(shop):
    silos, _ = shop
    for sql in [
        "SELECT nope(1) FROM crm.customers",
        "SELECT c.id / 'x' FROM crm.customers AS c JOIN lake.orders AS o ON o.customer_id = c.id",
    ]:
        started = time.perf_counter()
        with pytest.raises(FedAssetsError):
            query(sql, silos)
        assert time.perf_counter() - started < 30


def test_a_slow_fragment_in_a_duckdb_silo_is_interrupted_at_its_bound(tmp_path):
    import duckdb as _duckdb

    from fed_assets.errors import SiloTimeoutError
    from resources.silos.duckdb import DuckDBSilo

    path = str(tmp_path / "big.duckdb")
    with _duckdb.connect(path) as con:
        con.execute("CREATE TABLE t AS SELECT i AS x FROM range(200000) r(i)")
    silo = DuckDBSilo(name="big", path=path, statement_timeout_s=0.5)
    started = time.perf_counter()
    slow = "SELECT count(*) AS n FROM big.t AS a, big.t AS b WHERE a.x * 7 + b.x = 3"
    with pytest.raises(SiloTimeoutError, match=r"silo 'big'.*statement_timeout_s=0.5"):
        query(slow, [silo])
    assert time.perf_counter() - started < 5
    deadline = time.monotonic() + 5  # interrupted, the scan ends and leaves the silo idle
    while silo._running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not silo._running


def test_the_residual_query_is_bounded_by_what_is_left_of_the_query_bound(shop):
    import dataclasses

    import pyarrow as pa

    from fed_assets.errors import SiloTimeoutError
    from fed_assets.query.execute import _run_residual
    from fed_assets.query.planner import plan

    silos, _ = shop
    planned = plan("SELECT count(*) AS n FROM lake.orders", silos)
    heavy = dataclasses.replace(
        planned, residual="SELECT count(*) FROM __f0 AS a, __f0 AS b WHERE a.x * 7 + b.x = 3"
    )
    started = time.perf_counter()
    with pytest.raises(SiloTimeoutError, match="residual query was stopped.*query_timeout_s"):
        _run_residual(
            heavy, {"__f0": pa.table({"x": range(300_000)})}, memory_limit="1GB", seconds=0.5
        )
    assert time.perf_counter() - started < 5
