"""The embedded demo end to end: seed, observe silos, materialise the read-in-place assets."""

from __future__ import annotations

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from fed_assets.definitions import OBSERVE_JOB
from fed_assets.demo.assets import (
    default_rate_by_segment,
    monthly_volume_by_country,
    sar_rate_by_structuring,
)
from fed_assets.demo.definitions import demo_definitions
from fed_assets.demo.generate import DemoPaths, generate


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generate(root, scale=0.5, seed=11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FED_ASSETS_DATA", str(root))
        mp.delenv("FED_ASSETS_SILOS", raising=False)
        mp.delenv("FED_ASSETS_CATALOG", raising=False)
        defs = demo_definitions()
    return DemoPaths(root), defs


def sources(defs):
    return [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.is_observable]


def test_generator_is_deterministic(tmp_path):
    a = generate(tmp_path / "a", scale=0.1, seed=3)
    b = generate(tmp_path / "b", scale=0.1, seed=3)
    assert a == b
    ta = pq.read_table(tmp_path / "a" / "payments_lake" / "transactions")
    tb = pq.read_table(tmp_path / "b" / "payments_lake" / "transactions")
    assert ta.equals(tb)
    assert generate(tmp_path / "c", scale=0.1, seed=4) != a or not ta.equals(
        pq.read_table(tmp_path / "c" / "payments_lake" / "transactions")
    )


def test_four_silo_groups_with_lineage_to_demo_assets(demo):
    _, defs = demo
    graph = defs.get_repository_def().asset_graph
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys() if len(k.path) == 2}
    assert groups == {
        "eu_core_banking",
        "us_payments",
        "loans_warehouse",
        "compliance_store",
        "de_loans",
        "fr_loans",
        "es_loans",
    }
    parents = graph.get(dg.AssetKey("default_rate_by_segment")).parent_keys
    assert parents == {
        dg.AssetKey(["eu_core_banking", "customers"]),
        dg.AssetKey(["loans_warehouse", "applications"]),
    }
    customers = graph.get(dg.AssetKey(["eu_core_banking", "customers"]))
    schema = customers.metadata["dagster/column_schema"]
    pii = {c.name for c in schema.columns if "pii" in c.tags}
    assert pii == {"full_name", "email", "iban", "date_of_birth"}
    assert customers.metadata["region"] == "eu"


def test_observing_records_versions(demo):
    _, defs = demo
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance)
    assert result.success
    observed = {
        e.asset_key.to_user_string(): e.event_specific_data.asset_observation.data_version
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    assert set(observed) == {
        "eu_core_banking/customers",
        "us_payments/transactions",
        "loans_warehouse/applications",
        "compliance_store/aml_cases",
        "de_loans/loan_book",
        "fr_loans/loan_book",
        "es_loans/loan_book",
    }
    assert all(observed.values())


def test_partitioned_asset_reads_only_its_month(demo):
    paths, defs = demo
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*sources(defs), monthly_volume_by_country],
        selection=[monthly_volume_by_country],
        resources=defs.resources,
        instance=instance,
        partition_key="2025-03-01",
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node("monthly_volume_by_country")
    rows_read = materialization.metadata["rows read/transactions"].value
    # only June's files hold rows of the month: the others were skipped by their statistics
    (reads,) = materialization.metadata["silo reads"].value.records
    assert reads.data["files read"] == "1 of 12"
    expected = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{paths.payments}/transactions/*/*.parquet', "
        "hive_partitioning=true) WHERE month = '2025-03' AND status = 'settled'"
    ).fetchall()[0][0]
    assert rows_read == expected
    stored = pq.read_table(paths.results / "monthly_volume_by_country" / "2025-03-01.parquet")
    assert set(stored["month"].to_pylist()) == {"2025-03"}
    assert sum(stored["payments"].to_pylist()) == expected
    leftovers = [p for p in paths.results.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_planted_signal_is_visible(demo):
    _, defs = demo
    result = dg.materialize(
        [*sources(defs), default_rate_by_segment, sar_rate_by_structuring],
        selection=[default_rate_by_segment, sar_rate_by_structuring],
        resources=defs.resources,
        instance=dg.DagsterInstance.ephemeral(),
    )
    defaults = result.output_for_node("default_rate_by_segment").to_pylist()
    high = [r["default_rate"] for r in defaults if r["dti_band"] == "high"]
    normal = [r["default_rate"] for r in defaults if r["dti_band"] == "normal"]
    assert min(high) > max(normal)
    sar = {
        r["structuring"]: r["sar_rate"]
        for r in result.output_for_node("sar_rate_by_structuring").to_pylist()
    }
    assert sar[True] > sar[False] + 0.3
    # only non-PII customer columns left the EU silo
    (materialization,) = result.asset_materializations_for_node("default_rate_by_segment")
    sql = " ".join(
        v.value for k, v in materialization.metadata.items() if k.startswith("sql read/")
    )
    assert "full_name" not in sql and "iban" not in sql and "annual_income" in sql


def test_a_partitioned_federated_read_shows_files_read_against_files_present(demo):
    paths, defs = demo
    from fed_assets.catalog import Catalog
    from fed_assets.demo.assets import MONTHLY
    from fed_assets.demo.silos import embedded_silos
    from fed_assets.query.asset import federated_asset

    catalog = Catalog(embedded_silos(paths), paths.catalog)
    asset = federated_asset(
        "payments_per_month",
        "SELECT count(*) AS payments FROM us_payments.transactions",
        catalog=catalog,
        partitions_def=MONTHLY,
        partition_columns={"us_payments.transactions": "booked_at"},
    )
    result = dg.materialize(
        [*sources(defs), asset],
        selection=[asset],
        resources=defs.resources,
        instance=dg.DagsterInstance.ephemeral(),
        partition_key="2025-03-01",
    )
    (materialization,) = result.asset_materializations_for_node("payments_per_month")
    (files,) = materialization.metadata["files read"].value.records
    assert files.data == {
        "silo table": "us_payments.transactions",
        "files read": 1,
        "files present": 12,
    }
    expected = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{paths.payments}/transactions/*/*.parquet', "
        "hive_partitioning=true) WHERE month = '2025-03'"
    ).fetchall()[0][0]
    assert result.output_for_node("payments_per_month")["payments"].to_pylist() == [expected]
