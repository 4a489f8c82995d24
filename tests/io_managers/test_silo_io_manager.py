"""The read-in-place IO manager: columns, filters and partitions are pushed into the silo."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pytest
import sqlglot

from fed_assets.catalog import Catalog
from fed_assets.definitions import build_definitions
from fed_assets.errors import UnknownColumnError, UnknownSiloError
from io_managers.silo import SiloIOManager
from resources.silos.duckdb import DuckDBSilo

COUNTRIES = dg.StaticPartitionsDefinition(["DE", "FR", "NL"])
DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-05")


@pytest.fixture
def silo(tmp_path) -> DuckDBSilo:
    path = str(tmp_path / "shop.duckdb")
    with duckdb.connect(path) as con:
        con.execute(
            "CREATE TABLE orders AS SELECT i AS id, ['DE','FR','NL'][i % 3 + 1] AS country, "
            "TIMESTAMP '2025-01-01' + INTERVAL (i) HOUR AS placed_at, i * 1.5 AS total "
            "FROM range(96) t(i)"
        )
    return DuckDBSilo(name="shop", path=path, region="eu")


def defs_for(silo, tmp_path, *assets) -> dg.Definitions:
    catalog = Catalog({"shop": silo}, tmp_path / "catalog.json")
    return build_definitions(catalog, results_base_path=str(tmp_path / "results"), assets=assets)


def run(defs, asset, **kwargs):
    sources = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.is_observable]
    return dg.materialize(
        [*sources, asset],
        selection=[asset],
        resources=defs.resources,
        instance=dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def loaded_sql(result) -> str:
    """The SQL the asset's one input sent to the silo, as its materialisation shows it."""
    (materialization,) = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    ]
    (shown,) = [v.value for k, v in materialization.metadata.items() if k.startswith("sql read/")]
    # The metadata shows the SQL pretty-printed in a Markdown block: compare it on one line.
    sql = shown.split("```sql", 1)[1].rsplit("```", 1)[0]
    return sqlglot.parse_one(sql, read="duckdb").sql("duckdb")


def test_pandas_annotation_gets_a_dataframe_with_only_the_columns_asked(silo, tmp_path):
    @dg.asset(
        ins={
            "orders": dg.AssetIn(
                key=["shop", "orders"],
                metadata={"columns": ["id", "total"], "where": "total > 100"},
            )
        }
    )
    def big_orders(orders: pd.DataFrame) -> pd.DataFrame:
        assert isinstance(orders, pd.DataFrame)
        return orders

    result = run(defs_for(silo, tmp_path, big_orders), big_orders)
    out = result.output_for_node("big_orders")
    assert list(out.columns) == ["id", "total"]
    assert (out["total"] > 100).all() and len(out) == 96 - 67
    assert '"total" > 100' in loaded_sql(result)


def test_static_partition_becomes_a_pushed_predicate(silo, tmp_path):
    @dg.asset(
        partitions_def=COUNTRIES,
        ins={
            "orders": dg.AssetIn(key=["shop", "orders"], metadata={"partition_column": "country"})
        },
    )
    def orders_by_country(orders: pa.Table) -> pa.Table:
        return orders

    result = run(defs_for(silo, tmp_path, orders_by_country), orders_by_country, partition_key="FR")
    out = result.output_for_node("orders_by_country")
    assert set(out["country"].to_pylist()) == {"FR"} and out.num_rows == 32
    assert "\"country\" IN ('FR')" in loaded_sql(result)


def test_time_window_partition_reads_one_day(silo, tmp_path):
    @dg.asset(
        partitions_def=DAILY,
        ins={
            "orders": dg.AssetIn(key=["shop", "orders"], metadata={"partition_column": "placed_at"})
        },
    )
    def daily_orders(orders: pa.Table) -> pa.Table:
        return orders

    result = run(defs_for(silo, tmp_path, daily_orders), daily_orders, partition_key="2025-01-02")
    out = result.output_for_node("daily_orders")
    assert out.num_rows == 24
    assert {t.day for t in out["placed_at"].to_pylist()} == {2}


def test_unknown_column_in_input_metadata_names_it(silo, tmp_path):
    @dg.asset(
        ins={"orders": dg.AssetIn(key=["shop", "orders"], metadata={"columns": ["id", "discount"]})}
    )
    def broken(orders: pa.Table) -> pa.Table:
        return orders

    with pytest.raises(Exception) as info:
        run(defs_for(silo, tmp_path, broken), broken)
    cause = info.value.__cause__ or info.value
    assert isinstance(cause, UnknownColumnError)
    assert "discount" in str(cause) and "orders" in str(cause) and "shop" in str(cause)


def test_unknown_silo_is_named():
    manager = SiloIOManager({})
    context = dg.build_input_context(
        asset_key=dg.AssetKey(["gone", "t"]),
        upstream_output=dg.build_output_context(
            asset_key=dg.AssetKey(["gone", "t"]),
            definition_metadata={"fed/silo": "gone", "fed/table": "t"},
        ),
    )
    with pytest.raises(UnknownSiloError, match="gone"):
        manager.load_input(context)
