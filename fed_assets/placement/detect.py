"""This machine as a compute pool: its cores, memory, a measured GEMM FLOP/s, CUDA when present."""

from __future__ import annotations

import functools
import importlib.util
import os
import time

from fed_assets.placement.pools import ComputePool

# Side of the square matrices timed: 1024² fp32 is 2.1 GFLOP a product, ~20-50 ms on two cores,
# large enough for BLAS to reach its steady rate, small enough to detect in well under a second.
GEMM_SIZE = 1024
GEMM_REPEATS = 3
# Watts per CPU thread when nothing measures it: codecarbon's fallback for an unknown CPU model.
CPU_WATTS_PER_THREAD = 4.0
# World-average grid intensity (gCO₂e/kWh; IEA, the figure codecarbon also falls back to).
WORLD_GCO2_PER_KWH = 475.0
LOCAL_POOL = "local"


def gemm_flops(*, device: str = "cpu", dtype: str = "fp32", size: int = GEMM_SIZE) -> float:
    """FLOP/s of a square matrix product on ``device``: torch when installed (the training
    engine), numpy otherwise; the best of ``GEMM_REPEATS`` after one warm-up."""
    flops = 2.0 * size**3
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        a = torch.randn(size, size, dtype=torch_dtype, device=device)
        b = torch.randn(size, size, dtype=torch_dtype, device=device)

        def run() -> None:
            torch.mm(a, b)
            if device == "cuda":
                torch.cuda.synchronize()
    else:
        import numpy as np

        rng = np.random.default_rng(0)
        a = rng.standard_normal((size, size), dtype=np.float32)
        b = rng.standard_normal((size, size), dtype=np.float32)

        def run() -> None:
            a @ b

    run()
    best = float("inf")
    for _ in range(GEMM_REPEATS):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return flops / best


@functools.cache
def local_pool(region: str = "local") -> ComputePool:
    """This machine as a pool named ``local``: CUDA (through torch) when a GPU is present, else
    the CPU with its measured fp32 GEMM rate; price 0, watts from the thread count."""
    threads = os.cpu_count() or 1
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            peak = {
                "fp32": gemm_flops(device="cuda"),
                "fp16": gemm_flops(device="cuda", dtype="fp16"),
            }
            peak["fp16"] = max(peak["fp16"], peak["fp32"])
            return ComputePool(
                name=LOCAL_POOL,
                device="cuda",
                gpu_type=props.name,
                memory_gb=props.total_memory / 1e9,
                peak_flops=peak,
                usd_per_hour=0.0,
                watts=_nvml_power_limit_w() or 300.0,
                region=region,
                location=f"this machine ({threads} threads, {props.name})",
                grid_gco2_per_kwh=WORLD_GCO2_PER_KWH,
            )
    return ComputePool(
        name=LOCAL_POOL,
        device="cpu",
        memory_gb=ram_gb,
        peak_flops={"fp32": gemm_flops()},
        usd_per_hour=0.0,
        watts=threads * CPU_WATTS_PER_THREAD,
        region=region,
        location=f"this machine ({threads} threads, {ram_gb:.0f} GB)",
        grid_gco2_per_kwh=WORLD_GCO2_PER_KWH,
    )


def _nvml_power_limit_w() -> float | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000
    except Exception:  # no NVML library, no permission: the caller uses a default
        return None
