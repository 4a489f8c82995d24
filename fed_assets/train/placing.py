"""Where a model asset trains: the compute estate's choice before the run, measured beside it.

A model asset given a ``compute`` resource (``resources.compute.ComputeEstate``) estimates its
run from the training config and the rows it read, lets ``fed_assets.placement`` choose the pool
(memory, deadline, budget and the inputs' residency), measures the run, appends it to the
estate's history (which recalibrates the next estimate) and records placement, reasons and the
estimate-against-actual table in its materialisation. The placement's tags are recorded too: a
retrain requested by the source-change sensor carries them to where the model was placed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from fed_assets.train.config import TrainingConfig

# GPT-2 block: attention (4·d²) + MLP (8·d²) weights, plus biases and two layer norms (13·d).
_BLOCK_SQUARES, _BLOCK_LINEAR = 12, 13
# LoRA on GPT-2's fused ``c_attn`` (d → 3d): A is r × d, B is 3d × r per layer.
_C_ATTN_OUT = 3


def offline_shape(config: TrainingConfig, *, method: str, classes: int = 0) -> dict[str, int]:
    """Parameters (total, trainable) and shape of the offline GPT-2 base for ``config``.

    The tokenizer is trained to ``config.vocab_size`` (a small dataset may give fewer tokens,
    so this is an upper bound). On the offline base, LoRA also trains the embeddings (a random
    base learns nothing through adapters alone), so trainable = adapters + embeddings + head.
    """
    d, layers, vocab = config.n_embd, config.n_layer, config.vocab_size
    embeddings = vocab * d + config.max_length * d
    head = d * classes
    total = embeddings + layers * (_BLOCK_SQUARES * d * d + _BLOCK_LINEAR * d) + 2 * d + head
    adapters = layers * config.lora_r * (d + _C_ATTN_OUT * d)
    trainable = total if method == "full" else adapters + embeddings + head
    return {
        "params": total + (adapters if method != "full" else 0),
        "trainable": trainable,
        "n_layer": layers,
        "d_model": d,
        "n_head": config.n_head,
        "vocab": vocab,
    }


def training_tokens(rows: int, config: TrainingConfig) -> int:
    """Tokens the loop processes: the training split × epochs × the padded sequence length."""
    train_rows = max(1, round(rows * (1 - config.eval_fraction)))
    return int(train_rows * config.epochs * config.max_length)


def choose_placement(
    estate: Any,
    config: TrainingConfig,
    *,
    method: str,
    rows: int,
    classes: int,
    inputs: Sequence[tuple[Any, str, Sequence[str]]],
):
    """The estate's placement for this training run (raises ``PlacementRefused``)."""
    from fed_assets.placement import placement_for_training

    shape = offline_shape(config, method=method, classes=classes)
    trainable = shape.pop("trainable")
    return placement_for_training(
        estate,
        tokens=training_tokens(rows, config),
        method="full" if method == "full" else "lora",
        trainable=None if method == "full" else trainable,
        inputs=inputs,
        batch_size=config.batch_size,
        seq_len=config.max_length,
        **shape,
    )


@contextlib.contextmanager
def placed_run(estate: Any, placement, *, label: str) -> Iterator[Any]:
    """Measure the training inside the block on the placement's pool; the measurement's
    ``tokens`` is set by the caller. Appends the run to the estate's history."""
    from fed_assets.placement import measure

    with measure(
        placement.pool, placement.estimate, history=estate.history_path, label=label
    ) as run:
        yield run


def placement_output_metadata(estate: Any, placement, run) -> dict[str, Any]:
    """Placement, reasons, tags, estimate against actual and the error plot over past runs."""
    from fed_assets.placement import History, placement_metadata

    history = History(estate.history_path).records() if estate.history_path else []
    return placement_metadata(placement, run.actual, history=history)
