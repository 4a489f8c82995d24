"""FedAvg: the example-weighted mean of model updates, as a pure function over numbers.

As Flower's ``aggregate`` (``flwr/server/strategy/aggregate.py``): each update is a mapping of
parameter name → array with the number of examples it was trained on; the result weights each
update by its share of the examples. Sites that failed are left out by the caller and named
in ``failures``, not raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def fedavg(updates: Sequence[tuple[Mapping[str, np.ndarray], int]]) -> dict[str, np.ndarray]:
    """The example-weighted mean of ``updates`` ((weights by name, example count) pairs).

    Raises:
        ValueError: no update, no examples, or updates naming different parameters or shapes.
    """
    if not updates:
        raise ValueError("FedAvg needs at least one update")
    total = sum(n for _, n in updates)
    if total <= 0 or any(n < 0 for _, n in updates):
        raise ValueError(
            f"example counts must be ≥ 0 and sum to > 0, got {[n for _, n in updates]}"
        )
    names = set(updates[0][0])
    for weights, _ in updates[1:]:
        if set(weights) != names:
            raise ValueError(
                f"updates name different parameters: {sorted(names ^ set(weights))[:5]}"
            )
    averaged = {}
    for name in updates[0][0]:
        shapes = {np.shape(w[name]) for w, _ in updates}
        if len(shapes) != 1:
            raise ValueError(f"parameter {name!r} has different shapes across updates: {shapes}")
        averaged[name] = sum(
            np.asarray(w[name], dtype=np.float64) * (n / total) for w, n in updates
        ).astype(np.asarray(updates[0][0][name]).dtype)
    return averaged


def nbytes(weights: Mapping[str, np.ndarray]) -> int:
    """Bytes of one set of weights on the wire (their raw array bytes)."""
    return int(sum(np.asarray(w).nbytes for w in weights.values()))
