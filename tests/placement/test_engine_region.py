"""The federated engine's region, chosen from the estate: allowed by every policy, moving least."""

from __future__ import annotations

import pytest

from fed_assets.catalog import Catalog
from fed_assets.demo.federated import AML_TRAINING_SET_SQL, CREDIT_FEATURES_SQL
from fed_assets.demo.generate import DemoPaths, generate
from fed_assets.demo.silos import embedded_silos
from fed_assets.placement import PlacementRefused, choose_engine_region, region_costs
from fed_assets.query import query
from resources.compute import ComputeEstate


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generate(root, scale=0.2, seed=5)
    paths = DemoPaths(root)
    catalog = Catalog(embedded_silos(paths), paths.catalog)
    catalog.refresh()
    return catalog


@pytest.fixture(scope="module")
def estate():
    return ComputeEstate.example()


def crossing(result) -> int:
    return sum(n for (_, src, dst), n in result.bytes_by_route.items() if src != dst)


def test_us_is_refused_by_the_eu_policies_and_the_reason_is_kept(catalog, estate):
    costs = {c.region: c for c in region_costs(CREDIT_FEATURES_SQL, catalog, estate)}
    assert set(costs) == {"eu", "uk", "us"}
    assert not costs["us"].allowed
    assert "allowed_regions=['eu', 'uk']" in costs["us"].reason
    assert costs["eu"].allowed and costs["uk"].allowed


def test_the_chosen_region_moves_fewer_bytes_than_the_hand_set_one(catalog, estate):
    """The AML set reads the EU compliance store and US payments: run in the EU, only the
    payments aggregate crosses; the demo's hand-set UK moves both."""
    placed = choose_engine_region(AML_TRAINING_SET_SQL, catalog, estate)
    assert placed.region == "eu"
    hand_set = next(c for c in placed.costs if c.region == "uk")
    assert placed.bytes_crossing < hand_set.bytes_crossing
    assert placed.usd <= hand_set.usd
    assert placed.reasons[0].startswith("region eu")
    assert any("not us: refused by residency" in r for r in placed.reasons)
    # and measured, not only estimated: run the query both ways on the live silos
    chosen = query(
        AML_TRAINING_SET_SQL, estate.priced_silos(catalog.silos, "eu"), engine_region="eu"
    )
    hand = query(AML_TRAINING_SET_SQL, estate.priced_silos(catalog.silos, "uk"), engine_region="uk")
    assert chosen.table.equals(hand.table)  # same answer
    assert crossing(chosen) < crossing(hand)


def test_no_allowed_region_is_a_refusal_naming_each_region(catalog, estate):
    with pytest.raises(PlacementRefused, match="residency policies") as err:
        choose_engine_region(CREDIT_FEATURES_SQL, catalog, estate, candidates=["us", "apac"])
    assert err.value.constraint == "residency"
    assert set(err.value.rejected) == {"us", "apac"}


def test_latency_objective_and_unknown_objective(catalog, estate):
    placed = choose_engine_region(CREDIT_FEATURES_SQL, catalog, estate, objective="latency")
    assert placed.region in ("eu", "uk")
    from fed_assets.placement import PoolConfigError

    with pytest.raises(PoolConfigError, match="objective 'cheapest' is unknown"):
        choose_engine_region(CREDIT_FEATURES_SQL, catalog, estate, objective="cheapest")


def test_the_estate_prices_the_cost_models_routes(catalog, estate):
    priced = estate.priced_silos(catalog.silos, "uk")
    assert priced["us_payments"].egress_usd_per_gb == 0.05  # us → uk
    assert priced["eu_core_banking"].egress_usd_per_gb == 0.02  # eu → uk
    assert (
        priced["loans_warehouse"].egress_usd_per_gb
        == catalog.silos["loans_warehouse"].egress_usd_per_gb
    )
    assert catalog.silos["us_payments"].egress_usd_per_gb == 0.0  # the originals are untouched
    from fed_assets.placement import Link, SiloEngine

    slow = ComputeEstate(
        detect_local=False,
        links=[Link(source="us", destination="uk", usd_per_gb=0.09, mb_per_s=5)],
        silo_engines={"loans_warehouse": SiloEngine(scan_mb_per_s=42)},
    )
    priced = slow.priced_silos(catalog.silos, "uk")
    assert priced["us_payments"].scan_mb_per_s == 5  # the link is the bottleneck
    assert priced["loans_warehouse"].scan_mb_per_s == 42


def test_the_demo_places_its_federated_assets_from_the_estate(tmp_path, monkeypatch):
    import dagster as dg

    from fed_assets.demo.definitions import demo_definitions

    generate(tmp_path, scale=0.2, seed=5)
    monkeypatch.setenv("FED_ASSETS_DATA", str(tmp_path))
    monkeypatch.delenv("FED_ASSETS_SILOS", raising=False)
    monkeypatch.delenv("FED_ASSETS_CATALOG", raising=False)
    monkeypatch.delenv("FED_ASSETS_ESTATE", raising=False)
    defs = demo_definitions()
    graph = defs.get_repository_def().asset_graph
    aml = graph.get(dg.AssetKey("aml_training_set"))
    assert aml.metadata["fed/engine_region"] == "eu"  # chosen, not the hand-set uk
    assert "region eu" in aml.metadata["placement/engine region at load"].md_str
    assets = defs.get_repository_def().assets_defs_by_key
    assert "compute" in assets[dg.AssetKey("aml_training_set")].required_resource_keys  # each run
    assert isinstance(defs.resources["compute"], ComputeEstate)
    # an estate whose only engine region is the UK puts it back there
    uk = tmp_path / "uk.yaml"
    uk.write_text("engine_region: uk\nengine_regions: [uk]\n")
    monkeypatch.setenv("FED_ASSETS_ESTATE", str(uk))
    graph = demo_definitions().get_repository_def().asset_graph
    assert graph.get(dg.AssetKey("aml_training_set")).metadata["fed/engine_region"] == "uk"


def test_each_run_takes_its_engine_region_and_prices_from_the_compute_resource(
    catalog, estate, tmp_path
):
    """The same asset, hand-set to the UK at load, run under two estates: the example's prices
    put the engine in the EU; an estate where US → EU egress is dear puts it in the UK. The run
    records the region, why, and the price per route the planner used."""
    import dagster as dg

    from fed_assets.definitions import build_definitions
    from fed_assets.placement import Link
    from fed_assets.query.asset import federated_asset

    asset = federated_asset(
        "aml_set",
        AML_TRAINING_SET_SQL,
        catalog=catalog,
        engine_region="uk",
        compute="compute",
    )
    dear = ComputeEstate(
        engine_regions=["eu", "uk"],
        detect_local=False,
        links=[
            Link(source="us", destination="eu", usd_per_gb=5.0),
            Link(source="us", destination="uk", usd_per_gb=0.01),
            Link(source="eu", destination="uk", usd_per_gb=0.01),
        ],
    )
    placed = {}
    for name, compute in (("example", estate), ("dear", dear)):
        defs = dg.Definitions.merge(
            build_definitions(catalog, results_base_path=str(tmp_path / name), assets=[asset]),
            dg.Definitions(resources={"compute": compute}),
        )
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            asset_selection=[dg.AssetKey("aml_set")], instance=dg.DagsterInstance.ephemeral()
        )
        (event,) = result.get_asset_materialization_events()
        placed[name] = {k: v.value for k, v in event.materialization.metadata.items()}
    example, dear_run = placed["example"], placed["dear"]
    assert example["placement/engine region"] == "eu"  # not the hand-set uk
    assert dear_run["placement/engine region"] == "uk"  # the dearer EU link changed the choice
    prices = {r.data["silo"]: r.data for r in dear_run["placement/link prices"].records}
    assert prices["us_payments"]["route"] == "us → uk"
    assert prices["us_payments"]["usd per GB"] == 0.01  # the estate's figure, not the silo's
    for meta, region in ((example, "eu"), (dear_run, "uk")):
        audit = [r.data for r in meta["residency audit"].records]
        assert {r["destination region"] for r in audit if r["kind"] != "keys"} == {region}
    assert "region uk" in dear_run["placement/engine reasons"]
