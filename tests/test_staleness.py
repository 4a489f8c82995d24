"""Staleness that tells the truth, read through Dagster's own stale-status resolver.

The demo's silos are real files in a temporary folder (DuckDB, SQLite, a Parquet lake). Unchanged
silos keep every demo asset fresh whatever the order of runs and observations; a real change in
one silo marks exactly the assets downstream of it stale.
"""

from __future__ import annotations

import sqlite3

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

from fed_assets.catalog import Catalog
from fed_assets.definitions import OBSERVE_JOB, build_definitions
from fed_assets.demo.assets import DEMO_ASSETS
from fed_assets.demo.federated import CREDIT_FEATURES_SQL, federated_demo_assets
from fed_assets.demo.generate import DemoPaths, generate
from fed_assets.demo.silos import embedded_silos
from fed_assets.query.asset import federated_asset

MONTH = "2025-06-01"
PLAIN = ["default_rate_by_segment", "sar_rate_by_structuring"]
FEDERATED = ["credit_features", "aml_training_set"]
ALL = ["monthly_volume_by_country", *PLAIN, *FEDERATED]


@pytest.fixture
def demo(tmp_path):
    paths = DemoPaths(tmp_path / "demo")
    generate(paths.root, scale=0.25, seed=5)
    catalog = Catalog(embedded_silos(paths), paths.catalog)
    defs = build_definitions(
        catalog,
        results_base_path=str(paths.results),
        assets=[*DEMO_ASSETS, *federated_demo_assets(catalog)],
    )
    return paths, defs, dg.DagsterInstance.ephemeral()


def materialize(defs, instance, names):
    """Run the named demo assets the way the UI would: each partitioned one for ``MONTH``."""
    graph = defs.resolve_asset_graph()
    for partitioned in (True, False):
        keys = [
            dg.AssetKey(n) for n in names if graph.get(dg.AssetKey(n)).is_partitioned == partitioned
        ]
        if keys:
            job = defs.resolve_implicit_global_asset_job_def()
            result = job.execute_in_process(
                instance=instance,
                asset_selection=keys,
                partition_key=MONTH if partitioned else None,
            )
            assert result.success


def observe(defs, instance):
    assert defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance).success


def resolver(defs, instance) -> CachingStaleStatusResolver:
    """Dagster's stale-status resolver as the UI builds one for each request."""
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    return CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)


def statuses(defs, instance) -> dict[str, StaleStatus]:
    """Each demo asset's status as the UI computes it (a fresh resolver, as each page load)."""
    resolver_ = resolver(defs, instance)
    return {
        name: resolver_.get_status(
            dg.AssetKey(name), MONTH if name == "monthly_volume_by_country" else None
        )
        for name in ALL
    }


def stale(defs, instance) -> set[str]:
    return {n for n, s in statuses(defs, instance).items() if s == StaleStatus.STALE}


def test_unchanged_silos_keep_every_asset_fresh_in_any_order(demo):
    _, defs, instance = demo
    # A newcomer materialises first and observes later; then every other order follows.
    for step in ["materialize", "observe", "observe", "materialize", "materialize", "observe"]:
        if step == "materialize":
            materialize(defs, instance, ALL)
        else:
            observe(defs, instance)
        assert statuses(defs, instance) == dict.fromkeys(ALL, StaleStatus.FRESH), step


def test_observing_first_then_materialising_stays_fresh(demo):
    _, defs, instance = demo
    observe(defs, instance)
    materialize(defs, instance, PLAIN)
    observe(defs, instance)
    assert stale(defs, instance) == set()


def test_a_change_in_one_silo_marks_exactly_its_downstream_assets_stale(demo):
    paths, defs, instance = demo
    materialize(defs, instance, ALL)
    with duckdb.connect(str(paths.loans)) as con:
        con.execute("UPDATE applications SET debt_to_income = debt_to_income + 0.01")
    observe(defs, instance)
    assert stale(defs, instance) == {"default_rate_by_segment", "credit_features"}
    causes = resolver(defs, instance).get_stale_causes(dg.AssetKey("credit_features"))
    assert [c.dependency.asset_key for c in causes] == [
        dg.AssetKey(["loans_warehouse", "applications"])
    ]
    materialize(defs, instance, ["default_rate_by_segment", "credit_features"])
    assert stale(defs, instance) == set()


def test_a_change_read_before_anyone_observes_it_is_seen_by_the_other_readers(demo):
    """One asset reads a changed table (its read records the new version); the other reader of
    that table, not re-run, is stale at once — no observation needed."""
    paths, defs, instance = demo
    materialize(defs, instance, ALL)
    with sqlite3.connect(paths.compliance) as con:
        con.execute("UPDATE aml_cases SET sar_filed = NOT sar_filed WHERE rowid = 1")
    materialize(defs, instance, ["sar_rate_by_structuring"])
    assert stale(defs, instance) == {"aml_training_set"}


def test_a_new_month_in_the_lake_marks_the_payment_readers_stale(demo):
    paths, defs, instance = demo
    materialize(defs, instance, ALL)
    observe(defs, instance)
    month = paths.payments / "transactions" / "month=2025-06"
    (existing,) = list(month.glob("*.parquet"))
    extra = pq.read_table(existing).slice(0, 5)
    pq.write_table(extra.cast(pa.schema(extra.schema)), month / "late-arrivals.parquet")
    observe(defs, instance)
    assert stale(defs, instance) == {
        "monthly_volume_by_country",
        "sar_rate_by_structuring",
        "credit_features",
        "aml_training_set",
    }


def test_assets_carry_code_versions_that_follow_their_sql(demo):
    _, defs, _ = demo
    graph = defs.resolve_asset_graph()
    versions = {n: graph.get(dg.AssetKey(n)).code_version for n in ALL}
    assert all(versions.values()) and len(set(versions.values())) == len(ALL)
    catalog = Catalog(embedded_silos(demo[0]), demo[0].catalog)

    def version_of(sql):
        asset = federated_asset("x", sql, catalog=catalog, engine_region="uk")
        return asset.code_versions_by_key[dg.AssetKey("x")]

    relaid = "\n".join("  " + line for line in CREDIT_FEATURES_SQL.splitlines())
    assert version_of(relaid) == versions["credit_features"]
    assert (
        version_of(CREDIT_FEATURES_SQL.replace("0.0 END", "0.5 END")) != versions["credit_features"]
    )
