"""Estimates before a run, as pure functions: FLOPs, memory, time, money, energy, CO₂ and water.

Training FLOPs (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", §2.1): a forward
pass costs ≈ 2·P FLOPs per token (one multiply and one add per weight) plus 2·L·s·d for attention
scores; the backward pass twice that (gradients with respect to the activations, and with respect
to the weights), so full fine-tuning costs ≈ 6·P·T.

LoRA, derived the same way, with P frozen weights and Pa adapter weights:

- forward through the frozen weights: 2·P·T, and through the adapters: 2·Pa·T;
- backward, activation gradients: every layer above the first adapter must pass gradients down,
  through frozen weights too: 2·P·T, and 2·Pa·T through the adapters;
- backward, weight gradients: only the adapters have any: 2·Pa·T (the frozen weights' 2·P·T
  is the saving);

so LoRA training costs ≈ (4·P + 6·Pa)·T, about two thirds of full fine-tuning when Pa ≪ P. Its
saving is mostly memory (no gradients or optimiser state for P), not time.

Memory: weights, gradients of the trainable weights, optimiser state (AdamW: two fp32 moments per
trainable weight, plus an fp32 master copy when training in 16-bit), and activations per layer
of ≈ s·b·h·(34 + 5·a·s/h) bytes at 16-bit (Korthikanti et al. 2022, "Reducing Activation
Recomputation in Large Transformer Models", §4.1), plus the fp32 logits and their gradient.

Energy is device power × PUE × time; CO₂ is that energy × the grid's intensity; water is the
device energy × the site's water use (WUE is defined per kWh of IT energy, not facility energy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fed_assets.placement.errors import PoolConfigError

if TYPE_CHECKING:
    from fed_assets.placement.pools import ComputePool

# Bytes per value of each dtype a pool may quote peak FLOP/s for ("tf32" is fp32 storage with
# tensor-core maths; "fp8"/"int8" are inference formats).
DTYPE_BYTES = {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
# Share of peak FLOP/s a training or inference run achieves before any run has been measured:
# 35 % is a typical model-FLOPs utilisation for transformer training on GPUs (PaLM reports 46 %
# at scale, small-batch fine-tuning well below); calibration replaces it with measured figures.
DEFAULT_UTILISATION = 0.35
# Activation bytes per token per layer per hidden unit at 16-bit, and the attention term's
# factor (Korthikanti et al. 2022, eq. 2, no recomputation).
ACTIVATION_BYTES_PER_HIDDEN = 34
ATTENTION_ACTIVATION_FACTOR = 5
# AdamW keeps two fp32 moments per trainable weight; 16-bit training adds an fp32 master copy.
ADAM_STATE_BYTES = 8
MASTER_COPY_BYTES = 4
OPTIMIZERS = ("adamw", "sgd")
METHODS = ("full", "lora")


@dataclass(frozen=True)
class Workload:
    """A model run to estimate: training (``tokens`` = all tokens seen, epochs included) or
    inference (``tokens`` = tokens generated or scored).

    Attributes:
        params: parameters of the model, all of them.
        tokens: tokens processed.
        method: ``"full"`` fine-tuning or ``"lora"`` (adapters only).
        trainable: adapter parameters for LoRA; ``None`` means all for full fine-tuning.
        dtype: the number format the run computes in (a key of ``DTYPE_BYTES``).
        batch_size, seq_len: sequences per step and tokens per sequence (for activations).
        n_layer, d_model, n_head, vocab: the transformer's shape; zeros where unknown (the
            attention FLOPs and activations are then left out, and the estimate says so).
        optimizer: ``"adamw"`` or ``"sgd"`` (plain, no momentum).
    """

    params: int
    tokens: int
    method: Literal["full", "lora"] = "full"
    trainable: int | None = None
    dtype: str = "fp32"
    batch_size: int = 8
    seq_len: int = 128
    n_layer: int = 0
    d_model: int = 0
    n_head: int = 0
    vocab: int = 0
    optimizer: str = "adamw"

    def __post_init__(self):
        where = f"workload ({self.params:,} parameters)"
        if self.params <= 0:
            raise PoolConfigError(where, "params must be positive", "count the model's weights")
        if self.tokens < 0:
            raise PoolConfigError(where, "tokens must not be negative", "pass tokens ≥ 0")
        if self.method not in METHODS:
            raise PoolConfigError(
                where, f"method {self.method!r} is unknown", f"use one of {METHODS}"
            )
        if self.method == "lora" and not self.trainable:
            raise PoolConfigError(
                where,
                "method='lora' needs trainable (the adapter parameters)",
                "pass trainable=<adapter parameter count>",
            )
        if self.trainable is not None and not 0 < self.trainable <= self.params:
            raise PoolConfigError(
                where,
                f"trainable={self.trainable:,} is not between 1 and params={self.params:,}",
                "pass the count of weights that receive gradients",
            )
        if self.dtype not in DTYPE_BYTES:
            raise PoolConfigError(
                where, f"dtype {self.dtype!r} is unknown", f"use one of {sorted(DTYPE_BYTES)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise PoolConfigError(
                where, f"optimizer {self.optimizer!r} is unknown", f"use one of {OPTIMIZERS}"
            )
        if self.batch_size <= 0 or self.seq_len <= 0:
            raise PoolConfigError(where, "batch_size and seq_len must be positive", "pass both ≥ 1")

    @property
    def steps(self) -> int:
        """Optimiser steps (or forward batches): tokens ÷ (batch_size × seq_len), rounded up."""
        return -(-self.tokens // (self.batch_size * self.seq_len))

    @property
    def trained(self) -> int:
        """Weights that receive gradients."""
        return self.params if self.method == "full" and self.trainable is None else self.trainable


@dataclass(frozen=True)
class Memory:
    """Bytes a training run holds on one device, by part."""

    weights: float
    gradients: float
    optimiser: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimiser + self.activations

    @property
    def gb(self) -> float:
        return self.total / 1e9


@dataclass(frozen=True)
class Footprint:
    """What a run costs in money, energy, CO₂ and water, for a given time on a pool."""

    seconds: float
    usd: float
    kwh: float
    co2_kg: float
    water_l: float


@dataclass(frozen=True)
class RunEstimate:
    """An estimate made before a run on one pool.

    Attributes:
        pool: the pool's name.
        kind: ``"training"`` or ``"inference"``.
        flops: floating-point operations the run needs.
        memory: bytes it holds per device.
        utilisation: the share of peak FLOP/s assumed (calibrated or the default).
        peak_flops: the pool's peak FLOP/s at the run's dtype, all devices together.
        footprint: time, money, energy, CO₂, water.
        tokens: tokens the run processes; steps: its optimiser steps (batches).
        step_overhead_s: fixed seconds per step assumed on top of the FLOPs (Python, kernel
            launches, the optimiser's memory-bound update), from calibration; 0 before.
        notes: what the estimate left out or assumed.
        d_model: the model's width (0 where unknown), kept so calibration can fit how the
            share of peak grows with it.
    """

    pool: str
    kind: str
    flops: float
    memory: Memory
    utilisation: float
    peak_flops: float
    footprint: Footprint
    tokens: int = 0
    steps: int = 0
    step_overhead_s: float = 0.0
    notes: tuple[str, ...] = ()
    d_model: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds(self) -> float:
        return self.footprint.seconds


def attention_flops_per_token(workload: Workload) -> float:
    """Forward FLOPs per token for attention scores and their weighted sum: 2·L·s·d."""
    return 2.0 * workload.n_layer * workload.seq_len * workload.d_model


def training_flops(workload: Workload) -> float:
    """FLOPs to train on ``workload.tokens`` tokens: 6·P·T (full) or (4·P + 6·Pa)·T (LoRA),
    plus 3× the attention forward FLOPs where the shape is known."""
    per_token = 3.0 * attention_flops_per_token(workload)
    if workload.method == "lora":
        per_token += 4.0 * workload.params + 6.0 * workload.trained
    else:
        per_token += 6.0 * workload.params
    return per_token * workload.tokens


def inference_flops(workload: Workload) -> float:
    """FLOPs to run the model forward over ``workload.tokens`` tokens: ≈ 2·P per token."""
    return (2.0 * workload.params + attention_flops_per_token(workload)) * workload.tokens


def training_memory(workload: Workload) -> Memory:
    """Bytes one device holds to train ``workload`` (no sharding, no recomputation)."""
    value = DTYPE_BYTES[workload.dtype]
    trained = workload.trained
    optimiser = 0.0
    if workload.optimizer == "adamw":
        optimiser = trained * (ADAM_STATE_BYTES + (MASTER_COPY_BYTES if value < 4 else 0))
    return Memory(
        weights=workload.params * value,
        gradients=trained * value,
        optimiser=optimiser,
        activations=activation_bytes(workload),
    )


def inference_memory(workload: Workload) -> Memory:
    """Bytes one device holds to run ``workload`` forward (weights and one batch's activations,
    which are not kept past their layer)."""
    value = DTYPE_BYTES[workload.dtype]
    per_layer = activation_bytes(workload) / max(workload.n_layer, 1)
    return Memory(weights=workload.params * value, gradients=0, optimiser=0, activations=per_layer)


def activation_bytes(workload: Workload) -> float:
    """Activations kept for the backward pass: per layer s·b·h·(34 + 5·a·s/h) bytes at 16-bit
    (scaled to the dtype), plus the fp32 logits and their gradient (2 × 4·s·b·V)."""
    s, b, h = workload.seq_len, workload.batch_size, workload.d_model
    scale = DTYPE_BYTES[workload.dtype] / 2
    layers = 0.0
    if h:
        heads_term = ATTENTION_ACTIVATION_FACTOR * workload.n_head * s / h
        layers = workload.n_layer * s * b * h * (ACTIVATION_BYTES_PER_HIDDEN + heads_term) * scale
    logits = 2 * 4.0 * s * b * workload.vocab
    return layers + logits


def footprint(seconds: float, pool: ComputePool, *, device_kwh: float | None = None) -> Footprint:
    """Money, energy, CO₂ and water of ``seconds`` on ``pool``.

    Args:
        device_kwh: the IT energy when it was measured; by default the pool's rated watts ×
            time. Facility energy is that × PUE; water is the IT energy × the site's L/kWh.
    """
    it_kwh = pool.watts * seconds / 3.6e6 if device_kwh is None else device_kwh
    kwh = it_kwh * pool.pue
    return Footprint(
        seconds=seconds,
        usd=pool.usd_per_hour * seconds / 3600,
        kwh=kwh,
        co2_kg=kwh * pool.grid_gco2_per_kwh / 1000,
        water_l=it_kwh * pool.water_l_per_kwh,
    )


def estimate_training(
    workload: Workload,
    pool: ComputePool,
    *,
    utilisation: float | None = None,
    step_overhead_s: float = 0.0,
) -> RunEstimate:
    """FLOPs, memory, time = FLOPs ÷ (peak × utilisation) + steps × step overhead, money,
    energy, CO₂ and water of training ``workload`` on ``pool``.

    Args:
        utilisation: share of peak reached; ``None`` uses the pool's configured figure.
        step_overhead_s: fixed seconds per step (a calibrated figure; 0 by default).
    """
    return _estimate(
        "training",
        training_flops(workload),
        training_memory(workload),
        workload,
        pool,
        utilisation,
        step_overhead_s,
    )


def estimate_inference(
    workload: Workload,
    pool: ComputePool,
    *,
    utilisation: float | None = None,
    step_overhead_s: float = 0.0,
) -> RunEstimate:
    """The same for running ``workload`` forward (scoring or generating its tokens)."""
    return _estimate(
        "inference",
        inference_flops(workload),
        inference_memory(workload),
        workload,
        pool,
        utilisation,
        step_overhead_s,
    )


def _estimate(
    kind: str,
    flops: float,
    memory: Memory,
    workload: Workload,
    pool: ComputePool,
    utilisation: float | None,
    step_overhead_s: float,
) -> RunEstimate:
    peak = pool.peak_for(workload.dtype)
    share = pool.utilisation if utilisation is None else utilisation
    seconds = (flops / (peak * share) if flops else 0.0) + workload.steps * step_overhead_s
    notes = []
    if not workload.n_layer or not workload.d_model:
        notes.append("model shape unknown: attention FLOPs and layer activations left out")
    if pool.count > 1:
        notes.append(f"{pool.count} devices assumed data-parallel at the same utilisation")
    return RunEstimate(
        pool=pool.name,
        kind=kind,
        flops=flops,
        memory=memory,
        utilisation=share,
        peak_flops=peak,
        footprint=footprint(seconds, pool),
        tokens=workload.tokens,
        steps=workload.steps,
        step_overhead_s=step_overhead_s,
        notes=tuple(notes),
        d_model=workload.d_model,
    )


@dataclass(frozen=True)
class FederatedTraffic:
    """Weight bytes federated training moves.

    Attributes:
        per_round: bytes moved in one round, all sites.
        total: bytes over all rounds.
        by_route: (site region, server region) → bytes over all rounds, both directions.
        usd: egress price of ``by_route`` at the given link prices.
    """

    per_round: float
    total: float
    by_route: dict[tuple[str, str], float]
    usd: float


def federated_traffic(
    weight_bytes: float,
    sites: Mapping[str, str],
    server_region: str,
    rounds: int,
    *,
    usd_per_gb: Mapping[tuple[str, str], float] | None = None,
) -> FederatedTraffic:
    """Bytes of weights (or adapters) moved by FedAvg: each round every site downloads the
    global weights and uploads its update, 2 × ``weight_bytes`` per site.

    Args:
        weight_bytes: bytes of what moves (all weights, or only the adapters for LoRA).
        sites: site name → its region.
        server_region: where aggregation runs.
        rounds: federated rounds.
        usd_per_gb: (from, to) region → price; a route within one region is free.
    """
    if rounds < 0 or weight_bytes < 0:
        raise PoolConfigError(
            "federated traffic", "rounds and weight_bytes must not be negative", "pass ≥ 0"
        )
    by_route: dict[tuple[str, str], float] = {}
    for region in sites.values():
        route = (region, server_region)
        by_route[route] = by_route.get(route, 0.0) + 2 * weight_bytes * rounds
    prices = usd_per_gb or {}
    usd = 0.0
    for (src, dst), nbytes in by_route.items():
        if src != dst:  # half the bytes go each way
            usd += nbytes / 2 / 1e9 * (prices.get((src, dst), 0.0) + prices.get((dst, src), 0.0))
    per_round = 2 * weight_bytes * len(sites)
    return FederatedTraffic(
        per_round=per_round, total=per_round * rounds, by_route=by_route, usd=usd
    )
