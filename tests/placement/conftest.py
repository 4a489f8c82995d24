"""Pools with round figures, so estimates can be checked by hand."""

from __future__ import annotations

import pytest

from fed_assets.placement import ComputePool, RunRecord


def pool(**overrides) -> ComputePool:
    """A GPU pool: 1 TFLOP/s fp32, 10 GB, $3.60/h, 1 kW, PUE 1.5, 400 g/kWh, 2 L/kWh."""
    settings = dict(
        name="gpu",
        device="cuda",
        gpu_type="test-gpu",
        memory_gb=10,
        peak_flops={"fp32": 1e12, "fp16": 4e12},
        usd_per_hour=3.6,
        watts=1000,
        pue=1.5,
        region="eu",
        grid_gco2_per_kwh=400,
        water_l_per_kwh=2.0,
        utilisation=0.5,
    )
    return ComputePool(**{**settings, **overrides})


@pytest.fixture
def make_pool():
    return pool


def run_record(**overrides) -> RunRecord:
    """A measured training run on pool 'p': 1 TFLOP in 4 s at 1 TFLOP/s peak (25 %)."""
    settings = dict(
        pool="p",
        kind="training",
        dtype="fp32",
        flops=1e12,
        peak_flops=1e12,
        utilisation=0.5,
        est_seconds=2,
        seconds=4,
    )
    return RunRecord(**{**settings, **overrides})
