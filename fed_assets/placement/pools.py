"""Compute pools and network links: the figures placement works from, checked when configured."""

from __future__ import annotations

import json
from typing import Literal

from dagster import Config
from pydantic import Field, model_validator

from fed_assets.placement.errors import PoolConfigError

# The dtypes a pool may quote peak FLOP/s for (see estimate.DTYPE_BYTES).
DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8")
# A PUE below 1 would mean the facility gives energy back; above 3 is a figure typed wrong
# (the Uptime Institute's 2023 survey average is 1.58; hyperscalers report 1.1-1.2).
MAX_PUE = 3.0
# The Kubernetes extended resource a GPU is requested as (NVIDIA's device plugin).
NVIDIA_GPU_RESOURCE = "nvidia.com/gpu"


class ComputePool(Config):
    """A place training or inference can run: one machine type, ``count`` devices of it."""

    name: str = Field(description="Pool name, unique in the estate (shown as the placement).")
    device: Literal["cpu", "cuda"] = Field(
        description="'cpu', or 'cuda' for NVIDIA GPUs (then gpu_type says which)."
    )
    gpu_type: str | None = Field(
        default=None, description="GPU model for device 'cuda', e.g. 'A100-80GB', 'L4'."
    )
    count: int = Field(
        default=1,
        description="Devices per run: GPUs for 'cuda', machines for 'cpu'; assumed "
        "data-parallel (each holds the whole model).",
    )
    memory_gb: float = Field(
        description="Memory of one device in GB (GPU memory, or the machine's RAM for 'cpu')."
    )
    peak_flops: dict[str, float] = Field(
        description="Peak FLOP/s of one device by dtype ('fp32', 'tf32', 'bf16', 'fp16', "
        "'fp8', 'int8', 'fp64'), dense, from the datasheet or measured."
    )
    usd_per_hour: float = Field(description="Price of the pool (all its devices) per hour.")
    watts: float = Field(
        description="Power the pool's devices draw under load, all together (W); the "
        "device's TDP when not measured."
    )
    pue: float = Field(
        default=1.0,
        description="Power usage effectiveness of the facility (≥ 1): facility energy per unit "
        "of IT energy.",
    )
    region: str = Field(
        description="Region the pool runs in, as residency policies name it (e.g. 'eu', 'uk')."
    )
    location: str | None = Field(
        default=None, description="The provider's name for it, e.g. 'GCP europe-west2 (London)'."
    )
    grid_gco2_per_kwh: float = Field(
        description="Carbon intensity of the region's grid, gCO₂e per kWh."
    )
    water_l_per_kwh: float = Field(
        default=0.0,
        description="Site water use (WUE), litres per kWh of IT energy.",
    )
    utilisation: float = Field(
        default=0.35,
        description="Share of peak FLOP/s a run achieves before calibration (model-FLOPs "
        "utilisation); measured runs replace it.",
    )
    concurrency_pool: str | None = Field(
        default=None,
        description="Dagster concurrency pool that limits how many runs use this pool at once.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Kubernetes node selector that puts the run's pod on this pool's nodes, "
        "e.g. {'cloud.google.com/gke-accelerator': 'nvidia-l4'}.",
    )
    k8s_requests: dict[str, str] = Field(
        default_factory=dict,
        description="Further Kubernetes resource requests (e.g. {'cpu': '8', 'memory': '32Gi'}); "
        "GPUs are requested from device and count.",
    )

    @model_validator(mode="after")
    def _figures_agree(self) -> ComputePool:
        where = f"compute pool '{self.name}'"
        if self.memory_gb <= 0:
            raise PoolConfigError(
                where, f"memory_gb={self.memory_gb:g} is not positive", "give one device's memory"
            )
        if not self.peak_flops:
            raise PoolConfigError(
                where, "peak_flops is empty", "give at least {'fp32': <FLOP/s>} from the datasheet"
            )
        for dtype, flops in self.peak_flops.items():
            if dtype not in DTYPES:
                raise PoolConfigError(
                    where, f"peak_flops names an unknown dtype {dtype!r}", f"use {list(DTYPES)}"
                )
            if flops <= 0:
                raise PoolConfigError(
                    where, f"peak_flops[{dtype!r}]={flops:g} is not positive", "give FLOP/s > 0"
                )
        for field, value in (
            ("usd_per_hour", self.usd_per_hour),
            ("grid_gco2_per_kwh", self.grid_gco2_per_kwh),
            ("water_l_per_kwh", self.water_l_per_kwh),
        ):
            if value < 0:
                raise PoolConfigError(where, f"{field}={value:g} is negative", "give a figure ≥ 0")
        if self.watts <= 0:
            raise PoolConfigError(where, f"watts={self.watts:g} is not positive", "give the TDP")
        if not 1.0 <= self.pue <= MAX_PUE:
            raise PoolConfigError(
                where, f"pue={self.pue:g} is outside [1, {MAX_PUE}]", "a data centre's PUE is ≥ 1"
            )
        if not 0 < self.utilisation <= 1:
            raise PoolConfigError(
                where, f"utilisation={self.utilisation:g} is outside (0, 1]", "use e.g. 0.35"
            )
        if self.count < 1:
            raise PoolConfigError(where, f"count={self.count} is below 1", "use count ≥ 1")
        if self.device == "cuda" and not self.gpu_type:
            raise PoolConfigError(
                where, "device 'cuda' without gpu_type", "say which GPU, e.g. gpu_type: L4"
            )
        if self.device == "cpu" and self.gpu_type:
            raise PoolConfigError(
                where,
                f"device 'cpu' contradicts gpu_type={self.gpu_type!r}",
                "set device: cuda, or drop gpu_type",
            )
        flops = self.peak_flops
        if self.device == "cuda" and flops.get("fp16", float("inf")) < flops.get("fp32", 0):
            raise PoolConfigError(
                where,
                "peak_flops fp16 is below fp32 on a GPU: the two figures were swapped or "
                "one is not the dense tensor-core figure",
                "copy both from the same datasheet table",
            )
        return self

    def peak_for(self, dtype: str) -> float:
        """Peak FLOP/s of all devices together at ``dtype``.

        Raises:
            PoolConfigError: the pool quotes no figure for ``dtype`` (bf16 on a T4, ...).
        """
        if dtype not in self.peak_flops:
            raise PoolConfigError(
                f"compute pool '{self.name}'",
                f"no peak_flops figure for dtype {dtype!r}",
                f"run in one of {sorted(self.peak_flops)}, or add the {dtype} figure",
            )
        return self.peak_flops[dtype] * self.count

    def tags(self) -> dict[str, str]:
        """Dagster run tags that put a run on this pool: its name and region, the concurrency
        pool, and for Kubernetes (``dagster-k8s/config``) the GPU limit and node selector."""
        tags = {"fed_assets/pool": self.name, "fed_assets/region": self.region}
        if self.concurrency_pool:
            tags["dagster/concurrency_key"] = self.concurrency_pool
        resources: dict[str, dict[str, str]] = {}
        if self.k8s_requests:
            resources["requests"] = dict(self.k8s_requests)
        if self.device == "cuda":
            # Kubernetes extended resources are requested as limits (requests default to them).
            resources["limits"] = {NVIDIA_GPU_RESOURCE: str(self.count)}
        k8s: dict[str, dict] = {}
        if resources:
            k8s["container_config"] = {"resources": resources}
        if self.node_selector:
            k8s["pod_spec_config"] = {"node_selector": dict(self.node_selector)}
        if k8s:
            tags["dagster-k8s/config"] = json.dumps(k8s, sort_keys=True)
        return tags


class Link(Config):
    """What moving data from one region to another costs."""

    source: str = Field(description="Region the data leaves.")
    destination: str = Field(description="Region it arrives in.")
    usd_per_gb: float = Field(description="Egress price per GB on this route.")
    mb_per_s: float | None = Field(
        default=None, description="Throughput of the route (MB/s); None: not the bottleneck."
    )

    @model_validator(mode="after")
    def _figures_agree(self) -> Link:
        where = f"link {self.source} → {self.destination}"
        if self.usd_per_gb < 0:
            raise PoolConfigError(where, f"usd_per_gb={self.usd_per_gb:g} is negative", "give ≥ 0")
        if self.mb_per_s is not None and self.mb_per_s <= 0:
            raise PoolConfigError(where, f"mb_per_s={self.mb_per_s} is not positive", "give > 0")
        return self


class SiloEngine(Config):
    """A silo's own engine, as the estate describes it (overrides the silo resource's figures)."""

    region: str | None = Field(default=None, description="Region the silo's engine runs in.")
    scan_mb_per_s: float | None = Field(
        default=None, description="MB/s of Arrow the silo's engine delivers (measured)."
    )

    @model_validator(mode="after")
    def _positive(self) -> SiloEngine:
        if self.scan_mb_per_s is not None and self.scan_mb_per_s <= 0:
            raise PoolConfigError(
                "silo engine", f"scan_mb_per_s={self.scan_mb_per_s} is not positive", "give > 0"
            )
        return self
