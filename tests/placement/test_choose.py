"""``choose``: the cheapest pool that fits, its reasons and tags, or a refusal naming why."""

from __future__ import annotations

import json

import pytest

from fed_assets.placement import (
    PlacementRefused,
    PoolConfigError,
    Workload,
    choose,
    estimate_inference,
    placement_for_training,
)
from fed_assets.silo import SiloPolicy, TablePolicy
from resources.compute import ComputeEstate
from resources.silos.sqlite import SQLiteSilo
from tests.placement.conftest import pool, run_record

# GPT-2 small (124 M parameters) on 100 M tokens in fp16: fits a 16 GB T4 at batch 8 × 512.
GPT2_SMALL = Workload(
    params=124_000_000,
    tokens=100_000_000,
    dtype="fp16",
    batch_size=8,
    seq_len=512,
    n_layer=12,
    d_model=768,
    n_head=12,
    vocab=50257,
)


@pytest.fixture(scope="module")
def estate():
    return ComputeEstate.example()


def silo(name: str, region: str, **policy) -> SQLiteSilo:
    return SQLiteSilo(name=name, path="/nonexistent.db", region=region, policy=SiloPolicy(**policy))


def test_each_objective_picks_its_own_pool_with_reasons(estate):
    by_money = choose(GPT2_SMALL, estate, objective="money")
    by_time = choose(GPT2_SMALL, estate, objective="time")
    by_co2 = choose(GPT2_SMALL, estate, objective="co2")
    assert by_time.pool.name == "h100x8-us"  # 8 GPUs at 989 TFLOP/s
    assert by_money.pool.name != "h100x8-us" or by_money.estimate.footprint.usd <= min(
        a.footprint.usd for a in by_money.alternatives
    )
    for placement, key in ((by_money, "usd"), (by_co2, "co2_kg")):
        chosen = getattr(placement.estimate.footprint, key)
        assert all(chosen <= getattr(a.footprint, key) for a in placement.alternatives)
    assert by_co2.pool.region in ("eu", "uk")  # the cleaner grids
    assert by_time.estimate.seconds < by_money.estimate.seconds or by_time.pool == by_money.pool
    assert by_money.reasons[0].startswith("cheapest by money")
    assert any("fits memory" in r for r in by_money.reasons)
    assert "cpu-eu" in by_money.rejected  # quotes no fp16 figure


def test_a_model_too_large_for_every_pool_is_refused_naming_memory(estate):
    huge = Workload(params=70_000_000_000, tokens=1000, dtype="bf16")
    with pytest.raises(PlacementRefused, match="no pool meets the memory constraint") as err:
        choose(huge, estate)
    assert err.value.constraint == "memory"
    assert "use LoRA" in str(err.value)
    assert set(err.value.rejected) >= {"l4-eu", "a100-us", "h100x8-us"}


def test_lora_fits_where_full_fine_tuning_does_not():
    seven_b = dict(params=7_000_000_000, tokens=1_000_000, dtype="bf16")
    big = [pool(name="a100", memory_gb=80, peak_flops={"fp32": 19.5e12, "bf16": 312e12})]
    with pytest.raises(PlacementRefused, match="memory"):
        choose(Workload(**seven_b), big)  # 16 bytes a weight: 112 GB
    lora = choose(Workload(**seven_b, method="lora", trainable=4_000_000), big)
    assert lora.estimate.memory.gb < 80


def test_a_deadline_or_budget_no_pool_meets_is_refused_by_name(estate):
    with pytest.raises(PlacementRefused, match="deadline constraint") as err:
        choose(GPT2_SMALL, estate, deadline_s=1)
    assert err.value.constraint == "deadline"
    with pytest.raises(PlacementRefused, match="budget constraint") as err:
        choose(GPT2_SMALL, estate, budget_usd=0.0001)
    assert err.value.constraint == "budget" and "raise the budget" in str(err.value)


def test_a_deadline_moves_the_run_to_a_faster_pool(estate):
    cheapest = choose(GPT2_SMALL, estate, objective="co2")
    deadline = cheapest.estimate.seconds / 2
    hurried = choose(GPT2_SMALL, estate, objective="co2", deadline_s=deadline)
    assert hurried.estimate.seconds <= deadline
    assert hurried.pool.name != cheapest.pool.name
    assert cheapest.pool.name in hurried.rejected
    assert any("meets the deadline" in r for r in hurried.reasons)


def test_residency_keeps_training_where_the_policies_allow(estate):
    eu_only = silo("core", "eu", allowed_regions=["eu"])
    placed = choose(GPT2_SMALL, estate, inputs=[eu_only], objective="time")
    assert placed.pool.region == "eu"
    assert "rule allowed_regions=['eu']: rows would go to us" in placed.rejected["h100x8-us"]
    # a per-table rule is read through (silo, table)
    uk_table = silo("loans", "uk", tables={"applications": TablePolicy(allowed_regions=["uk"])})
    assert choose(GPT2_SMALL, estate, inputs=[(uk_table, "applications")]).pool.region == "uk"


def test_a_residency_no_pool_satisfies_is_refused(estate):
    sealed = silo("vault", "ch", export="none")
    with pytest.raises(PlacementRefused, match="residency constraint") as err:
        choose(GPT2_SMALL, estate, inputs=[sealed])
    assert err.value.constraint == "residency"
    assert "silo 'vault' (region ch), table '*': rule export=none" in str(err.value)
    assert "federated" in str(err.value)  # the fix: train where the data lives


def test_an_empty_estate_is_refused():
    with pytest.raises(PlacementRefused, match="the compute estate has no pool") as err:
        choose(GPT2_SMALL, ComputeEstate(detect_local=False))
    assert err.value.constraint == "empty"
    with pytest.raises(PoolConfigError, match="objective 'cheap' is unknown"):
        choose(GPT2_SMALL, [pool()], objective="cheap")


def test_pools_failing_different_constraints_are_each_listed():
    small = pool(name="small", memory_gb=0.001)
    far = pool(name="far", region="us")
    with pytest.raises(PlacementRefused, match="no pool meets every constraint") as err:
        choose(
            Workload(params=1_000_000, tokens=1000),
            [small, far],
            inputs=[silo("s", "eu", allowed_regions=["eu"])],
        )
    assert err.value.constraint == "several"
    assert "small: needs" in str(err.value) and "far: silo 's' (region eu)" in str(err.value)


def test_inference_is_placed_with_the_same_rules(estate):
    serve = Workload(params=124_000_000, tokens=1_000_000, dtype="int8")
    placed = choose(serve, estate, estimator=estimate_inference)
    assert placed.estimate.kind == "inference"
    assert placed.estimate.flops == 2 * 124_000_000 * 1_000_000


def test_calibrated_utilisation_changes_the_estimate(tmp_path):
    from fed_assets.placement import History

    history = tmp_path / "history.json"
    estate = ComputeEstate(pools=[pool()], detect_local=False, history_path=str(history))
    before = placement_for_training(estate, 1_000_000, 1_000_000)
    assert before.estimate.utilisation == 0.5  # the pool's configured prior
    # a measured run reached 10 % of peak: 6e12 FLOPs in 60 s at 1e12 peak
    History(history).append(run_record(pool="gpu", flops=6e12, est_seconds=12, seconds=60))
    after = placement_for_training(estate, 1_000_000, 1_000_000)
    assert after.estimate.utilisation == pytest.approx(0.1)
    assert after.estimate.seconds == pytest.approx(60)


def test_the_tags_are_what_dagster_k8s_would_run():
    """dagster-k8s's own job construction turns the placement's tags into a Kubernetes Job: the
    container asks for the GPUs, the pod lands on the pool's nodes. No cluster is needed."""
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    gpu = pool(
        name="l4",
        count=2,
        concurrency_pool="gpu-l4",
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
        k8s_requests={"cpu": "8", "memory": "32Gi"},
    )
    placement = choose(Workload(params=1_000_000, tokens=1000), [gpu])
    tags = placement.tags
    assert tags["dagster/concurrency_key"] == "gpu-l4"
    assert tags["fed_assets/pool"] == "l4"
    json.loads(tags["dagster-k8s/config"])  # a JSON string, as dagster-k8s reads tags
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image="fed-assets:test"),
        args=["dagster", "api", "execute_run"],
        job_name="dagster-run-test",
        user_defined_k8s_config=get_user_defined_k8s_config(tags),
    )
    pod = job.spec.template.spec
    (container,) = pod.containers
    assert container.resources.limits == {"nvidia.com/gpu": "2"}
    assert container.resources.requests == {"cpu": "8", "memory": "32Gi"}
    assert pod.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    # a CPU pool asks for no GPU
    cpu = pool(name="cpu", device="cpu", gpu_type=None, peak_flops={"fp32": 1e11})
    cpu_tags = choose(Workload(params=1000, tokens=10), [cpu]).tags
    assert "dagster-k8s/config" not in cpu_tags


def test_pii_columns_read_for_training_stay_in_their_region(estate):
    """The same rule the federated planner applies (fed_assets.residency.check_movement):
    training rows carrying a PII column may not leave the silo's region."""
    core = silo("core", "uk", pii_columns=["customers.email"])
    placed = choose(GPT2_SMALL, estate, inputs=[(core, "customers", ["segment", "email"])])
    assert placed.pool.region == "uk"
    assert "rule pii" in placed.rejected["l4-eu"]
    # without the PII column the cheapest pool anywhere will do
    free = choose(GPT2_SMALL, estate, inputs=[(core, "customers", ["segment"])])
    assert free.pool.name == choose(GPT2_SMALL, estate).pool.name
