"""The training loop: AdamW with warm-up, checkpoints every N steps, resume, NaN guard, progress.

A lean torch loop with the semantics of transformers' Trainer that matter here (linear warm-up
and decay, gradient clipping, seeded order), without its per-step overhead: the benchmark
compares it with a bare loop on the same model and batches.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fed_assets.train.config import TrainingConfig
from fed_assets.train.errors import DivergedError

log = logging.getLogger("fed_assets.train")

# Checkpoints kept in the folder: the newest and one before it, in case the newest is damaged.
KEEP_CHECKPOINTS = 2
# Label id the loss ignores (padding in causal LM targets), as in transformers.
IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """Token ids per example (already truncated) and, for classification, the class ids."""

    ids: Sequence[Sequence[int]]
    labels: np.ndarray | None
    pad_id: int
    truncated: int = 0

    @property
    def tokens(self) -> int:
        return sum(len(x) for x in self.ids)


@dataclass
class TrainResult:
    """What a run of the loop did (``history``: (step, training loss) per step)."""

    steps: int
    history: list[tuple[int, float]] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    resumed_from: int = 0
    session_tokens: int = 0  # trained by this call (after any resume): what tokens/s measures

    @property
    def tokens_per_s(self) -> float:
        return self.session_tokens / self.seconds if self.seconds else 0.0


def batch_tensors(data: Encoded, rows: Sequence[int], *, causal: bool):
    """Padded ``input_ids``, ``attention_mask`` and ``labels`` for ``rows`` (right padding)."""
    import torch

    width = max(len(data.ids[r]) for r in rows)
    ids = torch.full((len(rows), width), data.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        seq = data.ids[r]
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    if causal:
        labels = ids.masked_fill(mask == 0, IGNORE)
    else:
        labels = torch.as_tensor(data.labels[list(rows)], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def total_steps(rows: int, config: TrainingConfig) -> int:
    per_epoch = math.ceil(rows / config.batch_size)
    steps = max(1, math.ceil(per_epoch * config.epochs))
    return min(steps, config.max_steps) if config.max_steps else steps


def train(
    model,
    data: Encoded,
    config: TrainingConfig,
    *,
    causal: bool,
    fingerprint: str = "",
    logger: logging.Logger | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model``'s trainable parameters on ``data``; resume from ``config.checkpoint_dir``.

    Raises:
        DivergedError: the loss became NaN or infinite (names the step; the last checkpoint is
            kept).
    """
    import torch

    logger = logger or log
    torch.manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    rows = len(data.ids)
    steps = total_steps(rows, config)
    warmup = int(steps * config.warmup_fraction)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (steps - step) / max(1, steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    result = TrainResult(steps=steps)
    folder = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    start = 0
    if folder is not None:
        start = _resume(folder, fingerprint, model, optimizer, scheduler, result, logger)
    per_epoch = math.ceil(rows / config.batch_size)
    model.train()
    began = time.perf_counter()
    last_checkpoint = _latest(folder, fingerprint) if folder else None
    order_epoch, order = -1, None
    for step in range(start, steps):
        epoch, index = divmod(step, per_epoch)
        if epoch != order_epoch:
            order = np.random.default_rng(config.seed + 1_000 + epoch).permutation(rows)
            order_epoch = epoch
        batch_rows = order[index * config.batch_size : (index + 1) * config.batch_size]
        batch = batch_tensors(data, batch_rows, causal=causal)
        loss = model(**batch).loss
        value = float(loss.detach())
        if not math.isfinite(value):
            raise _diverged(step + 1, f"the loss became {value}", last_checkpoint)
        loss.backward()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.history.append((step + 1, value))
        trained = int(batch["attention_mask"].sum())
        result.tokens += trained
        result.session_tokens += trained
        done = step + 1
        if on_step is not None:
            on_step(done, value)
        if done % config.log_every == 0 or done == steps:
            elapsed = time.perf_counter() - began
            rate = result.session_tokens / elapsed if elapsed else 0.0
            eta = elapsed / (done - start) * (steps - done)
            logger.info(f"step {done}/{steps} loss {value:.4f} tokens/s {rate:,.0f} eta {eta:.1f}s")
        if folder is not None and (done % config.checkpoint_every == 0 or done == steps):
            if not all(bool(p.isfinite().all()) for p in params):
                raise _diverged(done, "the weights became NaN or infinite", last_checkpoint)
            last_checkpoint = _save(folder, fingerprint, done, model, optimizer, scheduler, result)
    result.seconds = time.perf_counter() - began
    model.eval()
    return result


def _diverged(step: int, what: str, checkpoint: Path | None) -> DivergedError:
    return DivergedError(
        f"training step {step}",
        f"{what} (last good checkpoint: {checkpoint or 'none'})",
        "lower learning_rate or set max_grad_norm; a rerun resumes from that checkpoint",
        step=step,
        checkpoint=str(checkpoint) if checkpoint else None,
    )


def trainable_state(model) -> dict:
    """The trainable parameters by name (what a checkpoint and a federated update carry)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _save(folder: Path, fingerprint: str, step: int, model, optimizer, scheduler, result) -> Path:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"checkpoint-{fingerprint}-{step:08d}.pt"
    tmp = folder / f".{final.name}.{uuid.uuid4().hex}.tmp"
    state = {
        "step": step,
        "model": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "history": result.history,
        "tokens": result.tokens,
    }
    try:
        torch.save(state, tmp)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    for old in sorted(folder.glob(f"checkpoint-{fingerprint}-*.pt"))[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)
    return final


def _latest(folder: Path, fingerprint: str) -> Path | None:
    found = sorted(folder.glob(f"checkpoint-{fingerprint}-*.pt")) if folder.is_dir() else []
    return found[-1] if found else None


def _resume(folder, fingerprint, model, optimizer, scheduler, result, logger) -> int:
    import torch

    for path in reversed(sorted(folder.glob(f"checkpoint-{fingerprint}-*.pt"))):
        try:
            state = torch.load(path, weights_only=False)
        except Exception:  # noqa: BLE001 - a damaged checkpoint: try the one before
            logger.warning(f"checkpoint {path} cannot be read; trying an older one")
            continue
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        result.history = list(state["history"])
        result.tokens = state["tokens"]
        result.resumed_from = state["step"]
        logger.info(f"resumed from {path.name} at step {state['step']}")
        return state["step"]
    return 0


def clear_checkpoints(folder: str | None) -> None:
    """Remove a checkpoint folder once the model it trained is saved."""
    if folder and Path(folder).is_dir():
        shutil.rmtree(folder, ignore_errors=True)
