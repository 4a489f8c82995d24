"""Cost-aware compute placement: estimate a run before it starts, choose where it runs, measure it.

- ``estimate``: FLOPs, memory, time, money, energy, CO₂ and water, as pure functions;
- ``choose``: the cheapest pool that fits memory, deadline, budget and residency → ``Placement``;
- ``choose_engine_region``: the region a federated query's embedded engine moves least from;
- ``measure``: time, tokens/s and energy of a run beside its estimate, into a ``History`` that
  recalibrates the utilisation figure;
- ``placement_metadata``: all of it as Dagster metadata (tables and a plot of the error).
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: the engine placement pulls in the planner, the metadata matplotlib.
_LAZY = {
    "ComputePool": "fed_assets.placement.pools",
    "Link": "fed_assets.placement.pools",
    "SiloEngine": "fed_assets.placement.pools",
    "PlacementRefused": "fed_assets.placement.errors",
    "PoolConfigError": "fed_assets.placement.errors",
    "Workload": "fed_assets.placement.estimate",
    "Memory": "fed_assets.placement.estimate",
    "Footprint": "fed_assets.placement.estimate",
    "RunEstimate": "fed_assets.placement.estimate",
    "FederatedTraffic": "fed_assets.placement.estimate",
    "training_flops": "fed_assets.placement.estimate",
    "inference_flops": "fed_assets.placement.estimate",
    "training_memory": "fed_assets.placement.estimate",
    "inference_memory": "fed_assets.placement.estimate",
    "estimate_training": "fed_assets.placement.estimate",
    "estimate_inference": "fed_assets.placement.estimate",
    "footprint": "fed_assets.placement.estimate",
    "federated_traffic": "fed_assets.placement.estimate",
    "Placement": "fed_assets.placement.choice",
    "choose": "fed_assets.placement.choice",
    "residency_allows": "fed_assets.placement.choice",
    "placement_for_training": "fed_assets.placement.training",
    "EnginePlacement": "fed_assets.placement.engine_region",
    "RegionCost": "fed_assets.placement.engine_region",
    "choose_engine_region": "fed_assets.placement.engine_region",
    "region_costs": "fed_assets.placement.engine_region",
    "History": "fed_assets.placement.history",
    "RunRecord": "fed_assets.placement.history",
    "calibrated_utilisation": "fed_assets.placement.history",
    "Calibration": "fed_assets.placement.history",
    "calibrate": "fed_assets.placement.history",
    "Actual": "fed_assets.placement.measuring",
    "Measurement": "fed_assets.placement.measuring",
    "measure": "fed_assets.placement.measuring",
    "local_pool": "fed_assets.placement.detect",
    "gemm_flops": "fed_assets.placement.detect",
    "placement_metadata": "fed_assets.placement.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fed_assets.placement' has no attribute {name!r}")


__all__ = sorted(_LAZY)
