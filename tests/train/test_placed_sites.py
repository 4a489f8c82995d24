"""Per-silo and federated models given the compute estate: each partition or site is placed
within its own silo's residency before a row is read, and shows placement, reasons and estimate
against the measured run, in the same metadata a single model shows."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from fed_assets.definitions import build_definitions
from fed_assets.train.federated_asset import federated_model
from fed_assets.train.per_silo import per_silo_model
from fed_assets.train.placing import PlacementGoal
from resources.compute import ComputeEstate
from resources.silos.duckdb import DuckDBSilo
from resources.silos.sqlite import SQLiteSilo
from tests.train.conftest import TINY
from tests.train.test_placed_model import cpu_pool

FEATURES = ["grade", "income"]
# The keys every placed model shows (fine_tuned_model, per_silo_model, federated_model).
PLACEMENT_KEYS = {
    "placement/pool",
    "placement/region",
    "placement/reasons",
    "placement/tags",
    "placement/estimate vs actual",
    "placement/energy method",
}


def _regional(catalog, datasets, **kwargs):
    return per_silo_model(
        "regional",
        datasets=datasets,
        task="sequence_classification",
        label="label",
        features=FEATURES,
        catalog=catalog,
        config=TINY,
        compute="compute",
        **kwargs,
    )


def _defs(catalog, asset, estate, tmp_path):
    return dg.Definitions.merge(
        build_definitions(catalog, results_base_path=str(tmp_path), assets=[asset]),
        dg.Definitions(resources={"compute": estate}),
    )


def _materialise(defs, key, partition=None, *, instance=None):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        asset_selection=[dg.AssetKey(key)],
        partition_key=partition,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _metadata(result):
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture
def count_scans(monkeypatch):
    """Counts queries sent to the DuckDB and SQLite silos (every read of a row goes there)."""
    scans: list[str] = []
    for kind in (DuckDBSilo, SQLiteSilo):
        original = kind.scan

        def counted(self, sql, *args, _original=original, **kwargs):
            scans.append(self.name)
            return _original(self, sql, *args, **kwargs)

        monkeypatch.setattr(kind, "scan", counted)
    return scans


def test_each_partition_trains_on_the_cheapest_pool_its_own_silo_allows(
    banks, tmp_path, count_scans, monkeypatch
):
    # The US pool is cheapest, but de_bank's rows may only go to de or eu; es_bank's may go anywhere.
    estate = ComputeEstate(
        pools=[
            cpu_pool("cpu-us", "us", 0.1),
            cpu_pool("cpu-eu", "eu", 0.5),
            cpu_pool("cpu-de", "de", 50.0),
        ],
        detect_local=False,
        history_path=str(tmp_path / "history.json"),
    )
    model = _regional(banks, {"de_bank": "loans", "es_bank": "loans"})
    defs = _defs(banks, model, estate, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    placed = {}
    for i, partition in enumerate(("de_bank", "es_bank", "de_bank")):  # de again: calibrated
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / f"home{i}"))  # train, don't resume
        result = _materialise(defs, "regional", partition, instance=instance)
        assert result.success
        placed[partition] = _metadata(result)
    de, es = placed["de_bank"], placed["es_bank"]
    assert set(de) >= PLACEMENT_KEYS and set(es) >= PLACEMENT_KEYS
    assert (de["placement/pool"], de["placement/region"]) == ("cpu-eu", "eu")
    assert (es["placement/pool"], es["placement/region"]) == ("cpu-us", "us")
    assert "rejected cpu-us" in de["placement/reasons"]  # refused for residency, and named
    assert es["placement/tags"]["dagster/concurrency_key"] == "train-cpu-us"
    table = {r.data["quantity"]: r.data for r in de["placement/estimate vs actual"].records}
    # catalog rows before the read, rows read after: both estimates shown, and the measurement
    assert table["seconds"]["estimated before read"] > 0 and table["seconds"]["measured"] > 0
    assert "base64," in de["placement/estimate error over runs"]
    history = json.loads((tmp_path / "history.json").read_text())
    assert [r["pool"] for r in history] == ["cpu-eu", "cpu-us", "cpu-eu"]
    assert history[2]["utilisation"] != history[0]["utilisation"]  # recalibrated from run 1


def test_a_refused_partition_reads_no_row(banks, tmp_path, count_scans):
    estate = ComputeEstate(pools=[cpu_pool("cpu-eu", "eu", 0.5)], detect_local=False)
    # no pool trains 240 rows in a microsecond
    model = _regional(
        banks, {"de_bank": "loans", "fr_bank": "loans"}, goal=PlacementGoal(deadline_s=1e-6)
    )
    defs = _defs(banks, model, estate, tmp_path)
    for partition, constraint in (("fr_bank", "residency"), ("de_bank", "deadline")):
        result = _materialise(defs, "regional", partition)
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        error = failure.step_failure_data.error.cause  # dagster wraps the user's error
        assert error.cls_name == "PlacementRefused"
        assert f"no pool meets the {constraint} constraint" in error.message
    assert count_scans == []  # neither the refused residency nor the deadline read a row


def test_this_machine_stands_in_for_each_site_in_its_own_region(banks):
    estate = ComputeEstate(detect_local=True, engine_region="uk")
    (here,) = estate.site_pools("de")
    assert (here.name, here.region) == ("local", "de") and "standing in" in here.location
    assert [p.region for p in estate.all_pools()] == ["uk"]  # the engine's pool stays put


def test_federated_sites_are_placed_in_their_regions_and_the_weights_counted(
    banks, tmp_path, monkeypatch
):
    estate = ComputeEstate(
        pools=[cpu_pool("cpu-eu", "eu", 0.5)],
        links=[{"source": r, "destination": "eu", "usd_per_gb": 0.02} for r in ("de", "es")]
        + [{"source": "eu", "destination": r, "usd_per_gb": 0.02} for r in ("de", "es")],
        detect_local=True,
        engine_region="uk",
        history_path=str(tmp_path / "history.json"),
    )
    model = federated_model(
        "federated",
        datasets={"de_bank": "loans", "es_bank": "loans"},
        catalog=banks,
        label="label",
        features=FEATURES,
        rounds=1,
        aggregator_region="eu",
        config=TINY,
        compute="compute",
    )
    result = _materialise(_defs(banks, model, estate, tmp_path), "federated")
    assert result.success
    meta = _metadata(result)
    assert set(meta) >= PLACEMENT_KEYS
    # the aggregation runs in eu: this machine standing in there costs nothing, cpu-eu does
    assert (meta["placement/pool"], meta["placement/region"]) == ("local", "eu")
    sites = {r.data["site"]: r.data for r in meta["placement/sites"].records}
    assert {n: s["region"] for n, s in sites.items()} == {"de_bank": "de", "es_bank": "es"}
    traffic = {r.data["site"]: r.data for r in meta["placement/weight traffic"].records}
    for name, row in traffic.items():
        assert row["moved bytes"] == row["estimated bytes"] > 0, name  # exact: same model
        assert row["estimated usd"] > 0  # de ⇄ eu is priced by the estate's links
    table = {r.data["quantity"]: r.data for r in meta["placement/estimate vs actual"].records}
    assert table["seconds"]["measured"] > 0 and table["seconds"]["estimated"] > 0
    assert meta["raw rows moved"] == 0


def test_a_refused_federation_starts_no_site(banks, tmp_path, monkeypatch):
    import fed_assets.train.federated as federated

    started = []
    monkeypatch.setattr(federated, "train_federated", lambda *a, **k: started.append(a))
    estate = ComputeEstate(pools=[cpu_pool("cpu-eu", "eu", 0.5)], detect_local=False)
    model = federated_model(
        "federated",
        datasets={"de_bank": "loans", "fr_bank": "loans"},
        catalog=banks,
        label="label",
        features=FEATURES,
        aggregator_region="eu",
        config=TINY,
        compute="compute",
    )
    result = _materialise(_defs(banks, model, estate, tmp_path), "federated")
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    # fr_bank's rows may not leave fr (export: none) and no pool is there
    error = failure.step_failure_data.error.cause
    assert error.cls_name == "PlacementRefused" and "fr_bank" in error.message
    assert started == []
