"""A model asset given the compute estate: trains where the estate chooses, within residency,
and shows placement, reasons and estimate against the measured run."""

from __future__ import annotations

import dagster as dg

from fed_assets.definitions import build_definitions
from fed_assets.placement.pools import ComputePool
from fed_assets.train.asset import fine_tuned_model
from fed_assets.train.placing import PlacementGoal, offline_shape
from resources.compute import ComputeEstate
from tests.train.conftest import TINY
from tests.train.test_asset import FEATURES, run


def cpu_pool(name: str, region: str, usd: float) -> ComputePool:
    """A CPU pool with round figures, in its own Dagster concurrency pool ``train-<name>``."""
    return ComputePool(
        name=name,
        device="cpu",
        memory_gb=16,
        peak_flops={"fp32": 5e10},
        usd_per_hour=usd,
        watts=60,
        pue=1.2,
        region=region,
        grid_gco2_per_kwh=300,
        water_l_per_kwh=1.0,
        concurrency_pool=f"train-{name}",
    )


def _de_credit(banks, **kwargs):
    """A credit model on de_bank.loans placed by the ``compute`` resource."""
    return fine_tuned_model(
        "de_credit",
        dataset="de_bank.loans",
        task="sequence_classification",
        label="label",
        features=FEATURES,
        catalog=banks,
        config=TINY,
        compute="compute",
        **kwargs,
    )


def test_the_model_trains_on_the_cheapest_pool_its_data_may_go_to(banks, tmp_path, monkeypatch):
    # The US pool is ten times cheaper, but de_bank's rows may only go to de or eu.
    estate = ComputeEstate(
        pools=[cpu_pool("cpu-us", "us", 0.1), cpu_pool("cpu-de", "de", 1.0)],
        detect_local=False,
        history_path=str(tmp_path / "history.json"),
    )
    model = _de_credit(banks)
    defs = dg.Definitions.merge(
        build_definitions(banks, results_base_path=str(tmp_path), assets=[model]),
        dg.Definitions(resources={"compute": estate}),
    )
    for i in range(2):  # the second run's estimate is calibrated by the first one's actuals
        # a fresh checkpoint folder each time: a run resumed from a finished one trains nothing
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / f"home{i}"))
        result = run(defs, [dg.AssetKey("de_credit")])
        assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["placement/pool"] == "cpu-de" and meta["placement/region"] == "de"
    assert "cpu-us" in meta["placement/reasons"]  # the refused pool is named with its reason
    measured = {r.data["quantity"]: r.data for r in meta["placement/estimate vs actual"].records}
    assert measured["seconds"]["measured"] > 0 and measured["seconds"]["estimated"] > 0
    assert "base64," in meta["placement/estimate error over runs"]
    # chosen from the catalog's 240 rows before the read, then refined from the rows read
    assert measured["seconds"]["estimated before read"] > 0
    assert "SELECT" in meta["sql pushed to silo"]
    audit = [r.data for r in meta["residency audit"].records]
    assert {(r["source region"], r["destination region"]) for r in audit} == {("de", "de")}


def test_offline_shape_counts_gpt2_parameters_as_transformers_builds_them():
    from transformers import GPT2Config, GPT2LMHeadModel

    config = TINY.replace(vocab_size=300)
    built = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=300,
            n_positions=config.max_length,
            n_embd=config.n_embd,
            n_layer=config.n_layer,
            n_head=config.n_head,
        )
    )
    counted = sum(p.numel() for p in built.parameters())
    assert offline_shape(config, method="full")["params"] == counted


def test_a_refused_model_reads_no_row(banks, tmp_path, monkeypatch):
    from resources.silos.duckdb import DuckDBSilo

    scans = []
    original = DuckDBSilo.scan
    monkeypatch.setattr(
        DuckDBSilo, "scan", lambda self, sql, *a, **k: scans.append(sql) or original(self, sql)
    )
    estate = ComputeEstate(pools=[cpu_pool("cpu-de", "de", 1.0)], detect_local=False)
    # no pool trains for a billionth of a dollar
    model = _de_credit(banks, goal=PlacementGoal(budget_usd=1e-9))
    defs = dg.Definitions.merge(
        build_definitions(banks, results_base_path=str(tmp_path), assets=[model]),
        dg.Definitions(resources={"compute": estate}),
    )
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        asset_selection=[dg.AssetKey("de_credit")],
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error.cause
    assert error.cls_name == "PlacementRefused" and "budget" in error.message
    assert scans == []  # refused before any row of de_bank.loans was read
