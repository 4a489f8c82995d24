"""Federated query assets: lineage, load-time checks without silos, run metadata, partitions, demo."""

from __future__ import annotations

import re

import dagster as dg
import duckdb
import pyarrow.compute as pc
import pytest
from sqlglot import exp

from fed_assets.catalog import Catalog
from fed_assets.definitions import build_definitions
from fed_assets.demo.definitions import demo_definitions
from fed_assets.demo.federated import (
    AML_TRAINING_SET_SQL,
    CREDIT_FEATURES_SQL,
    DEMO_ENGINE_REGION,
)
from fed_assets.demo.generate import generate
from fed_assets.demo.silos import PII
from fed_assets.errors import (
    ConfigurationError,
    QuerySyntaxError,
    SiloTimeoutError,
    UnknownColumnError,
    UnknownSiloError,
    UnknownTableError,
)
from fed_assets.query import PolicyViolation, query
from fed_assets.query.asset import federated_asset, partition_filtered
from fed_assets.silo import SiloPolicy, SiloResource
from io_managers.results import ParquetResultsIOManager
from resources.silos.duckdb import DuckDBSilo
from resources.silos.parquet import ParquetSilo
from resources.silos.sqlite import SQLiteSilo
from tests.query.compare import assert_same

SEGMENT_TOTALS = (
    "SELECT c.segment, COUNT(*) AS orders, SUM(o.total) AS total "
    "FROM crm.customers AS c JOIN lake.orders AS o ON o.customer_id = c.id "
    "GROUP BY c.segment ORDER BY c.segment"
)


@pytest.fixture(scope="module")
def online(shop, tmp_path_factory):
    """A catalog of the shop's live silos, with its snapshot written."""
    silos, _ = shop
    catalog = Catalog(silos, tmp_path_factory.mktemp("catalog") / "catalog.json")
    assert set(catalog.refresh().values()) == {"ok"}
    return catalog


@pytest.fixture
def offline(online, tmp_path, monkeypatch):
    """The same snapshot, every silo pointed at a missing file, and any silo contact an error."""
    moved = {}
    for name, silo in online.silos.items():
        field = "root" if isinstance(silo, ParquetSilo) else "path"
        moved[name] = silo.model_copy(update={field: str(tmp_path / f"gone-{name}")})

    def contacted(self, *args, **kwargs):
        raise AssertionError(f"silo {self.name} was contacted while the code location loaded")

    for cls in (DuckDBSilo, ParquetSilo, SQLiteSilo):
        for method in ("tables", "schema", "stats", "version"):
            monkeypatch.setattr(cls, method, contacted)
    monkeypatch.setattr(SiloResource, "scan", contacted)
    return Catalog(moved, online.snapshot_path)


def materialize(asset, catalog, tmp_path, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset],
        resources={**catalog.silos, "io_manager": ParquetResultsIOManager(base_path=str(tmp_path))},
        instance=dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def metadata_of(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


# ---------------------------------------------------------------------------- definition time


def test_lineage_runs_from_silo_tables_and_the_location_loads_without_silos(offline):
    asset = federated_asset("segment_totals", SEGMENT_TOTALS, catalog=offline, group_name="g")
    crm, orders = dg.AssetKey(["crm", "customers"]), dg.AssetKey(["lake", "orders"])
    assert set(asset.dependency_keys) == {crm, orders}
    assert asset.required_resource_keys == {"crm", "lake", "io_manager"}
    spec = asset.specs_by_key[dg.AssetKey("segment_totals")]
    assert spec.kinds == {"duckdb", "parquet"}
    defs = build_definitions(offline, results_base_path="unused", assets=[asset])
    graph = defs.get_repository_def().asset_graph
    assert graph.get(dg.AssetKey("segment_totals")).parent_keys == {crm, orders}
    assert graph.get(crm).group_name == "crm"


@pytest.mark.parametrize(
    ("sql", "error", "message"),
    [
        ("SELEC id FROM crm.customers", QuerySyntaxError, r"does not parse"),
        ("SELECT * FROM warehouse.customers", UnknownSiloError, r"silo 'warehouse'.*crm"),
        ("SELECT * FROM crm.accounts", UnknownTableError, r"table 'accounts'.*customers"),
        (
            "SELECT c.shoe_size FROM crm.customers AS c",
            UnknownColumnError,
            r"column 'shoe_size'.*crm\.customers",
        ),
        ("DELETE FROM crm.customers", Exception, r"read-only"),
    ],
    ids=["bad-sql", "unknown-silo", "unknown-table", "unknown-column", "write"],
)
def test_bad_query_fails_when_the_code_location_loads(offline, sql, error, message):
    with pytest.raises(error, match=message):
        federated_asset("bad", sql, catalog=offline)


def test_policy_breach_fails_at_load(offline):
    with pytest.raises(PolicyViolation, match=r"column 'email'.*rule pii"):
        federated_asset("leak", "SELECT email FROM crm.customers", catalog=offline)


def test_a_silo_never_snapshotted_and_down_does_not_blank_the_location(shop, tmp_path):
    silos, _ = shop
    down = {**silos, "ref": silos["ref"].model_copy(update={"path": str(tmp_path / "gone")})}
    catalog = Catalog(down, tmp_path / "catalog.json")  # no snapshot yet: ref cannot be read
    sql = (
        "SELECT c.id, r.risk FROM crm.customers AS c JOIN ref.countries AS r ON r.code = c.country"
    )
    asset = federated_asset("risk_by_customer", sql, catalog=catalog)
    assert set(asset.dependency_keys) == {
        dg.AssetKey(["crm", "customers"]),
        dg.AssetKey(["ref", "countries"]),
    }
    checked = asset.specs_by_key[dg.AssetKey("risk_by_customer")].metadata["fed/checked_at_load"]
    assert "silo 'ref'" in checked and "snapshot" in checked
    with pytest.raises(UnknownSiloError, match="nowhere"):
        federated_asset("bad", "SELECT * FROM ref.countries, nowhere.t", catalog=catalog)


def test_partition_columns_are_checked_at_load(offline):
    monthly = dg.MonthlyPartitionsDefinition(start_date="2025-01-01")
    with pytest.raises(ConfigurationError, match=r"does not read that table.*lake\.orders"):
        federated_asset(
            "p",
            "SELECT order_id FROM lake.orders",
            catalog=offline,
            partitions_def=monthly,
            partition_columns={"lake.items": "order_id"},
        )
    with pytest.raises(UnknownColumnError, match=r"'booked_at'.*ordered_at"):
        federated_asset(
            "p",
            "SELECT order_id FROM lake.orders",
            catalog=offline,
            partitions_def=monthly,
            partition_columns={"lake.orders": "booked_at"},
        )
    with pytest.raises(ConfigurationError, match="partitions_def"):
        federated_asset(
            "p",
            "SELECT order_id FROM lake.orders",
            catalog=offline,
            partition_columns={"lake.orders": "ordered_at"},
        )


def test_partition_filter_wraps_each_reference_and_keeps_aliases():
    sql = (
        "WITH recent AS (SELECT * FROM lake.orders) SELECT o.order_id, r.status "
        "FROM LAKE.Orders AS o JOIN recent AS r ON r.order_id = o.order_id "
        "JOIN lake.items ON items.order_id = o.order_id"
    )
    out = partition_filtered(
        sql, {"lake.orders": exp.column("status").eq(exp.Literal.string("open"))}
    )
    assert out.count("WHERE status = 'open'") == 2  # in the CTE and the aliased reference
    assert "AS o JOIN" in out and "JOIN lake.items ON" in out  # other tables untouched


# ---------------------------------------------------------------------------- materialisation


def test_materialisation_records_plan_movement_residency_and_schema(online, shop, tmp_path):
    _, colocated = shop
    asset = federated_asset("segment_totals", SEGMENT_TOTALS, catalog=online, engine_region="eu")
    result = materialize(asset, online, tmp_path)
    assert result.success
    table = result.output_for_node("segment_totals")
    assert_same(table, colocated.sql(SEGMENT_TOTALS).to_arrow_table(), SEGMENT_TOTALS)

    meta = metadata_of(result)
    assert meta["dagster/row_count"] == table.num_rows == 3
    assert [c.name for c in meta["dagster/column_schema"].columns] == table.column_names
    # the plan's SQL is laid out one clause a line, the residual's and each fragment's
    assert meta["plan"].startswith("**Federated plan**") and "**Residual query**" in meta["plan"]
    assert "\nFROM " in meta["plan"] and "\nGROUP BY\n" in meta["plan"]
    assert {r.data["silo"] for r in meta["fragments"].records} == {"crm", "lake"}
    estimates = {r.data["silo"]: r.data for r in meta["rows estimated vs actual"].records}
    assert set(estimates) == {"crm", "lake"}
    assert all(r["estimated"] > 0 and r["q-error"] >= 1 for r in estimates.values())
    assert meta["run-time decisions"]  # what the executor decided, or that nothing was left to
    for silo in ("crm", "lake"):
        assert meta[f"rows moved/{silo}"] == estimates[silo]["actual"] > 0
        assert meta[f"bytes moved/{silo}"] > 0
    assert meta["bytes moved"] == meta["bytes moved/crm"] + meta["bytes moved/lake"]
    audit = [r.data for r in meta["residency audit"].records]
    crm = [r for r in audit if r["source silo"] == "crm"]
    assert crm and all(
        (r["source region"], r["destination region"], r["allowed by"])
        == ("eu", "eu", "same region (eu)")
        for r in crm
    )
    assert any(
        (r["kind"], r["source region"], r["destination region"], r["allowed by"])
        == ("aggregates", "us", "eu", "export allowed")
        and r["via"].startswith("__f")
        and r["bytes"] > 0
        for r in audit
        if r["source silo"] == "lake"
    )
    stages = {r.data["stage"] for r in meta["seconds by stage"].records}
    assert stages == {"planning", "fragments", "residual"}
    assert "```sql" in meta["fragment sql"] and '"customers"' in meta["fragment sql"]


def test_extra_policy_applies_at_load(offline):
    with pytest.raises(PolicyViolation, match=r"silo 'lake'.*export=none"):
        federated_asset(
            "t", SEGMENT_TOTALS, catalog=offline, policy={"lake": SiloPolicy(export="none")}
        )
    with pytest.raises(ConfigurationError, match="policy 'nowhere'"):
        federated_asset("t", SEGMENT_TOTALS, catalog=offline, policy={"nowhere": SiloPolicy()})


def test_extra_policy_for_a_silo_the_query_does_not_read_is_harmless(online, tmp_path):
    asset = federated_asset(
        "t", SEGMENT_TOTALS, catalog=online, policy={"ref": SiloPolicy(export="none")}
    )
    assert materialize(asset, online, tmp_path).success


def test_time_partition_is_pushed_into_the_silo(online, shop, tmp_path, scans):
    _, colocated = shop
    sql = "SELECT status, COUNT(*) AS n FROM lake.orders GROUP BY status ORDER BY status"
    asset = federated_asset(
        "orders_by_status",
        sql,
        catalog=online,
        partitions_def=dg.MonthlyPartitionsDefinition(start_date="2025-01-01"),
        partition_columns={"lake.orders": "ordered_at"},
    )
    result = materialize(asset, online, tmp_path, partition_key="2025-03-01")
    fragment_sql = metadata_of(result)["fragment sql"]
    assert "\"ordered_at\" >= CAST('2025-03-01 00:00:00' AS TIMESTAMP)" in fragment_sql
    assert "\"ordered_at\" < CAST('2025-04-01 00:00:00' AS TIMESTAMP)" in fragment_sql
    assert [s for _, s in scans if "ordered_at" in s]  # the silo itself was asked to filter
    (files,) = metadata_of(result)["files read"].records  # both files span March's dates
    assert files.data == {"silo table": "lake.orders", "files read": 2, "files present": 2}
    expected = colocated.sql(
        "SELECT status, COUNT(*) AS n FROM lake.orders WHERE ordered_at >= '2025-03-01' "
        "AND ordered_at < '2025-04-01' GROUP BY status ORDER BY status"
    ).to_arrow_table()
    assert_same(result.output_for_node("orders_by_status"), expected, sql)


def test_static_partition_becomes_an_in_list_in_the_silo(online, shop, tmp_path):
    _, colocated = shop
    sql = (
        "SELECT o.status, c.segment, SUM(o.total) AS total FROM lake.orders AS o "
        "JOIN crm.customers AS c ON c.id = o.customer_id GROUP BY ALL ORDER BY ALL"
    )
    asset = federated_asset(
        "totals_by_status",
        sql,
        catalog=online,
        engine_region="eu",
        partitions_def=dg.StaticPartitionsDefinition(["open", "shipped", "returned"]),
        partition_columns={"lake.orders": "status"},
    )
    result = materialize(asset, online, tmp_path, partition_key="returned")
    assert "\"status\" IN ('returned')" in metadata_of(result)["fragment sql"]
    table = result.output_for_node("totals_by_status")
    assert set(table["status"].to_pylist()) == {"returned"}
    expected = colocated.sql(sql.replace("GROUP BY", "WHERE o.status = 'returned' GROUP BY"))
    assert_same(table, expected.to_arrow_table(), sql)


# ---------------------------------------------------------------------------- the demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generate(root, scale=0.2, seed=13)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FED_ASSETS_DATA", str(root))
        mp.delenv("FED_ASSETS_SILOS", raising=False)
        mp.delenv("FED_ASSETS_CATALOG", raising=False)
        defs = demo_definitions()
    return defs


def _colocated(silos: dict[str, SiloResource]) -> duckdb.DuckDBPyConnection:
    """Every demo table copied into one DuckDB under schemas named like the silos."""
    con = duckdb.connect()
    for name, silo in silos.items():
        con.execute(f"CREATE SCHEMA {name}")
        for table in silo.tables():
            con.register("src", silo.read(table).read_all())
            con.execute(f"CREATE TABLE {name}.{table} AS SELECT * FROM src")
            con.unregister("src")
    return con


def test_demo_federated_assets_match_colocated_data(demo, scans):
    graph = demo.get_repository_def().asset_graph
    assert graph.get(dg.AssetKey("credit_features")).parent_keys == {
        dg.AssetKey(["eu_core_banking", "customers"]),
        dg.AssetKey(["us_payments", "transactions"]),
        dg.AssetKey(["loans_warehouse", "applications"]),
    }
    assert graph.get(dg.AssetKey("aml_training_set")).parent_keys == {
        dg.AssetKey(["compliance_store", "aml_cases"]),
        dg.AssetKey(["us_payments", "transactions"]),
    }
    targets = [
        a
        for a in demo.assets
        if {"credit_features", "aml_training_set"} & {k.path[-1] for k in a.keys}
    ]
    sources = [a for a in demo.assets if isinstance(a, dg.AssetsDefinition) and a.is_observable]
    result = dg.materialize(
        [*sources, *targets],
        selection=targets,
        resources=demo.resources,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    silos = {k: v for k, v in demo.resources.items() if isinstance(v, SiloResource)}
    colocated = _colocated(silos)
    for name, sql in (
        ("credit_features", CREDIT_FEATURES_SQL),
        ("aml_training_set", AML_TRAINING_SET_SQL),
    ):
        table = result.output_for_node(name)
        assert table.num_rows > 0
        assert_same(table, colocated.sql(sql).to_arrow_table(), sql)

    credit = result.output_for_node("credit_features")
    pii = {c.split(".")[1] for c in PII}
    assert not pii & set(credit.column_names)
    core_sql = [s for name, s in scans if name == "eu_core_banking"]
    assert core_sql and not any(column in s for s in core_sql for column in pii)
    assert pc.sum(credit["defaulted"].cast("int64")).as_py() > 0  # the label is there


def test_demo_refuses_pii_before_any_data_moves(demo, scans):
    silos = {k: v for k, v in demo.resources.items() if isinstance(v, SiloResource)}
    leaky = CREDIT_FEATURES_SQL.replace(
        "SELECT c.customer_id,", "SELECT c.customer_id, c.full_name,"
    )
    assert leaky != CREDIT_FEATURES_SQL
    with pytest.raises(PolicyViolation) as info:
        query(leaky, silos, engine_region=DEMO_ENGINE_REGION)
    message = str(info.value)
    assert "eu_core_banking" in message and "'full_name'" in message and "rule pii" in message
    assert scans == []


def test_residency_audit_lists_every_route_keys_included(online, shop, tmp_path):
    _, colocated = shop
    sql = (
        "SELECT c.segment, o.total FROM crm.customers AS c JOIN lake.orders AS o "
        "ON o.customer_id = c.id WHERE c.country = 'NG'"
    )
    asset = federated_asset("nigeria", sql, catalog=online, engine_region="eu")
    result = materialize(asset, online, tmp_path)
    assert_same(result.output_for_node("nigeria"), colocated.sql(sql).to_arrow_table(), sql)
    meta = metadata_of(result)
    audit = [r.data for r in meta["residency audit"].records]
    (keys,) = [
        r
        for r in audit
        if r["kind"] == "keys"
        and re.fullmatch(r"__f\d → __f\d", r["via"])
        and (r["source silo"], r["source region"], r["destination region"]) == ("crm", "eu", "us")
    ]
    expected = colocated.sql("SELECT count(*) FROM crm.customers WHERE country = 'NG'")
    assert keys["rows"] == expected.fetchall()[0][0]
    assert any(r["kind"] == "rows" and r["via"].startswith("__f") for r in audit)
    assert any(
        (r["source silo"], r["source region"], r["destination region"]) == ("crm", "eu", "eu")
        for r in audit
    )
    assert meta["bytes moved"] == sum(meta[f"bytes moved/{s}"] for s in ("crm", "lake"))


def test_time_bound_of_a_federated_asset_holds(online, tmp_path):
    asset = federated_asset("t", SEGMENT_TOTALS, catalog=online, timeout_s=0.0)
    assert "fragment 0 s" in asset.specs_by_key[dg.AssetKey("t")].metadata["fed/time_bounds"]
    with pytest.raises(SiloTimeoutError, match=r"fragment __f\d: no result within its time bound"):
        materialize(asset, online, tmp_path)
