"""The one call a model asset makes: where to train, with the estate's calibrated figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fed_assets.placement.choice import Input, Placement, choose
from fed_assets.placement.estimate import Workload
from fed_assets.placement.history import History, calibrate


def placement_for_training(
    estate: Any,
    params: int,
    tokens: int,
    *,
    method: str = "full",
    trainable: int | None = None,
    dtype: str = "fp32",
    inputs: Sequence[Input] = (),
    objective: str = "money",
    deadline_s: float | None = None,
    budget_usd: float | None = None,
    pools: Sequence[Any] | None = None,
    **shape: int,
) -> Placement:
    """Choose the pool to train a model of ``params`` parameters on ``tokens`` tokens.

    Utilisation (and a per-step overhead) come from the estate's run history
    (``history_path``, fitted by ``calibrate``) where runs on a pool have been measured, else
    from the pool's configured figure. Put ``placement.tags`` on the
    run (``dg.asset(op_tags=...)`` or the run request's tags) and record
    ``placement_metadata(placement, actual)`` beside the model's own metadata.

    Args:
        estate: a ``resources.compute.ComputeEstate``.
        method, trainable, dtype: see ``Workload``; for LoRA, ``trainable`` is the adapters'
            parameter count.
        inputs: the silos, ``(silo, table)`` or ``(silo, table, columns)`` the training rows
            are read from.
        pools: the candidate pools (default: every pool of the estate; a site's training
            passes ``estate.site_pools(region)``).
        shape: ``batch_size``, ``seq_len``, ``n_layer``, ``d_model``, ``n_head``, ``vocab``.

    Raises:
        PlacementRefused: no pool fits (the message names the constraint).
    """
    workload = Workload(
        params=params, tokens=tokens, method=method, trainable=trainable, dtype=dtype, **shape
    )
    history = History(estate.history_path) if getattr(estate, "history_path", None) else None
    records = history.records() if history is not None else []

    def utilisation(pool):
        return calibrate(records, pool.name, kind="training", dtype=dtype)

    return choose(
        workload,
        estate if pools is None else list(pools),
        objective=objective,
        deadline_s=deadline_s,
        budget_usd=budget_usd,
        inputs=inputs,
        utilisation=utilisation,
    )


def model_shape(model: Any) -> dict[str, int]:
    """``params`` and the shape keywords of a transformers model (GPT-2 / Llama style config
    names), for ``placement_for_training(estate, **model_shape(model), tokens=...)``."""
    config = getattr(model, "config", None)

    def pick(*names: str) -> int:
        return next((int(getattr(config, n)) for n in names if getattr(config, n, None)), 0)

    return {
        "params": sum(p.numel() for p in model.parameters()),
        "n_layer": pick("n_layer", "num_hidden_layers"),
        "d_model": pick("n_embd", "hidden_size"),
        "n_head": pick("n_head", "num_attention_heads"),
        "vocab": pick("vocab_size"),
    }
