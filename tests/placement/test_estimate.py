"""Estimates before a run, checked on numbers worked out by hand."""

from __future__ import annotations

import pytest

from fed_assets.placement import (
    PoolConfigError,
    Workload,
    estimate_inference,
    estimate_training,
    federated_traffic,
    footprint,
    inference_flops,
    training_flops,
    training_memory,
)
from tests.placement.conftest import pool


def test_full_fine_tuning_is_six_flops_per_parameter_per_token():
    assert training_flops(Workload(params=1_000_000, tokens=1000)) == 6e9


def test_lora_costs_four_p_plus_six_adapter_flops_per_token():
    lora = Workload(params=1_000_000, tokens=1000, method="lora", trainable=10_000)
    assert training_flops(lora) == (4 * 1_000_000 + 6 * 10_000) * 1000
    full = training_flops(Workload(params=1_000_000, tokens=1000))
    assert 0.66 < training_flops(lora) / full < 0.68  # about two thirds


def test_attention_adds_six_layer_seq_width_per_token_when_the_shape_is_known():
    shaped = Workload(params=1000, tokens=10, n_layer=2, d_model=8, seq_len=4)
    assert training_flops(shaped) == (6 * 1000 + 3 * 2 * 2 * 4 * 8) * 10
    assert inference_flops(shaped) == (2 * 1000 + 2 * 2 * 4 * 8) * 10


def test_inference_is_two_flops_per_parameter_per_token():
    assert inference_flops(Workload(params=7_000_000_000, tokens=1)) == 14e9


def test_memory_adamw_fp32_is_sixteen_bytes_per_weight_plus_activations():
    m = training_memory(Workload(params=1_000_000, tokens=1))
    assert (m.weights, m.gradients, m.optimiser) == (4e6, 4e6, 8e6)
    assert m.activations == 0  # no shape given


def test_memory_bf16_keeps_an_fp32_master_copy_and_lora_only_adapter_state():
    m = training_memory(Workload(params=1_000_000, tokens=1, dtype="bf16"))
    assert (m.weights, m.gradients, m.optimiser) == (2e6, 2e6, 12e6)
    lora = training_memory(
        Workload(params=1_000_000, tokens=1, method="lora", trainable=1000, dtype="bf16")
    )
    assert (lora.weights, lora.gradients, lora.optimiser) == (2e6, 2000, 12000)


def test_activations_follow_korthikanti_per_layer_plus_logits():
    w = Workload(
        params=1,
        tokens=1,
        dtype="fp16",
        batch_size=2,
        seq_len=16,
        n_layer=3,
        d_model=32,
        n_head=4,
        vocab=100,
    )
    per_layer = 16 * 2 * 32 * (34 + 5 * 4 * 16 / 32)
    assert training_memory(w).activations == 3 * per_layer + 2 * 4 * 16 * 2 * 100
    fp32 = Workload(**{**w.__dict__, "dtype": "fp32"})
    assert training_memory(fp32).activations == 2 * 3 * per_layer + 2 * 4 * 16 * 2 * 100


def test_time_money_energy_co2_water_of_one_estimate():
    # 6 × 1e6 × 1e6 = 6e12 FLOPs at 1e12 × 0.5 → 12 s
    e = estimate_training(Workload(params=1_000_000, tokens=1_000_000), pool())
    f = e.footprint
    assert e.seconds == pytest.approx(12.0)
    assert f.usd == pytest.approx(3.6 * 12 / 3600)
    it_kwh = 1000 * 12 / 3.6e6
    assert f.kwh == pytest.approx(it_kwh * 1.5)  # facility energy: × PUE
    assert f.co2_kg == pytest.approx(it_kwh * 1.5 * 0.4)
    assert f.water_l == pytest.approx(it_kwh * 2.0)  # WUE is per kWh of IT energy
    assert e.tokens_per_s == pytest.approx(1_000_000 / 12)


def test_utilisation_and_dtype_and_device_count_change_the_time():
    w = Workload(params=1_000_000, tokens=1_000_000)
    assert estimate_training(w, pool(), utilisation=0.25).seconds == pytest.approx(24.0)
    half = Workload(params=1_000_000, tokens=1_000_000, dtype="fp16")
    assert estimate_training(half, pool()).seconds == pytest.approx(3.0)
    assert estimate_training(w, pool(count=4)).seconds == pytest.approx(3.0)
    assert estimate_inference(w, pool()).seconds == pytest.approx(4.0)


def test_measured_energy_replaces_the_rating():
    f = footprint(3600, pool(), device_kwh=0.5)
    assert (f.kwh, f.water_l, f.usd) == (pytest.approx(0.75), pytest.approx(1.0), 3.6)


def test_federated_weight_bytes_per_round_and_route():
    traffic = federated_traffic(
        1e9,
        {"bank_de": "eu", "bank_fr": "eu", "bank_us": "us"},
        "eu",
        rounds=3,
        usd_per_gb={("us", "eu"): 0.05, ("eu", "us"): 0.02},
    )
    assert traffic.per_round == 6e9  # each site: download + upload
    assert traffic.total == 18e9
    assert traffic.by_route == {("eu", "eu"): 12e9, ("us", "eu"): 6e9}
    assert traffic.usd == pytest.approx(3 * (0.05 + 0.02))  # 1 GB each way per round


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": 0}, "params must be positive"),
        ({"method": "qlora"}, "method 'qlora' is unknown"),
        ({"method": "lora"}, "needs trainable"),
        ({"trainable": 10**9}, "is not between 1 and params"),
        ({"dtype": "fp4"}, "dtype 'fp4' is unknown"),
        ({"batch_size": 0}, "batch_size and seq_len must be positive"),
    ],
)
def test_bad_workloads_name_the_field(kwargs, message):
    with pytest.raises(PoolConfigError, match=message):
        Workload(**{"params": 1000, "tokens": 10, **kwargs})


def test_a_dtype_the_pool_has_no_figure_for_is_refused():
    with pytest.raises(PoolConfigError, match="no peak_flops figure for dtype 'bf16'"):
        estimate_training(Workload(params=1000, tokens=10, dtype="bf16"), pool())
