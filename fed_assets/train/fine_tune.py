"""``fine_tune``: train a small specialised model on a table and measure it beside its baselines."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fed_assets.train import baselines
from fed_assets.train.base import build_model, load_pretrained_tokenizer, resolve_base, with_method
from fed_assets.train.config import TrainingConfig
from fed_assets.train.data import Prepared, prepare
from fed_assets.train.errors import ConfigFieldError
from fed_assets.train.loop import Encoded, train
from fed_assets.train.model import FineTunedModel
from fed_assets.train.render import Renderer
from fed_assets.train.tokenizer import train_tokenizer

# Config fields that do not change what is trained (so a checkpoint from another value fits).
UNTRAINED_FIELDS = ("checkpoint_dir", "checkpoint_every", "log_every")


def fine_tune(
    data: Any,
    *,
    task: str,
    label: str | None = None,
    text: str | None = None,
    template: str | None = None,
    base_model: str | None = None,
    method: str = "lora",
    config: TrainingConfig | Mapping[str, Any] | None = None,
    features: Sequence[str] | None = None,
    logger: logging.Logger | None = None,
) -> FineTunedModel:
    """Fine-tune a language model on ``data`` and return it with held-out metrics.

    Args:
        data: a ``pyarrow.Table`` or pandas DataFrame.
        task: ``"sequence_classification"`` (rows rendered to text, predict ``label``) or
            ``"causal_lm"`` (learn the texts of column ``text``).
        label: the class column (classification).
        text: the text column (causal LM).
        template: a ``str.format`` template over columns; default "column is value." for every
            feature column (TabLLM's serialisation).
        base_model: a Hugging Face id or local folder; ``None`` builds a small GPT-2 from the
            config with a byte-level BPE tokenizer trained on the data (no hub needed).
        method: ``"lora"`` (peft adapters) or ``"full"``.
        config: a ``TrainingConfig`` (or a dict of its fields).
        features: the feature columns (default: every column but the label, or the template's).
        logger: where progress lines go (the Dagster asset passes its run log).

    Raises:
        FedAssetsError: see ``fed_assets.train.errors`` for each case.
    """
    config = _config(config)
    if method not in ("lora", "full"):
        raise ConfigFieldError("method", f"{method!r} is not a method", "use 'lora' or 'full'")
    base = resolve_base(base_model)
    prepared = prepare(
        data,
        task=task,
        label=label,
        text=text,
        template=template,
        features=features,
        eval_fraction=config.eval_fraction,
        seed=config.seed,
    )
    classify = task == "sequence_classification"
    renderer = None
    if classify:
        renderer = Renderer.fit(
            prepared.table.take(prepared.train),
            prepared.features,
            template=template,
            numbers=config.numbers,
            bins=config.bins,
        )
        texts = renderer.render(prepared.table)
    else:
        texts = [str(t) for t in prepared.table.column(text).to_pylist()]
    if base.source == "offline":
        corpus = [texts[i] for i in prepared.train] + (
            renderer.vocabulary_text() if renderer else []
        )
        tokenizer = train_tokenizer(corpus, vocab_size=config.vocab_size)
    else:
        tokenizer = load_pretrained_tokenizer(base.name)
    model = start_model(task, tokenizer, config, base, len(prepared.classes))
    tuned = FineTunedModel(
        task=task,
        method=method,
        base=base,
        model=None,
        tokenizer=tokenizer,
        config=config,
        renderer=renderer,
        label=label if classify else None,
        classes=prepared.classes,
        text=None if classify else text,
        base_state=model["base_state"],
    )
    tuned.model = with_method(model["model"], task, method, config, base=base)
    encoded = tuned.encode(texts)
    fingerprint = run_fingerprint(prepared, config, task, method, base.to_dict())
    result = train(
        tuned.model,
        subset(encoded, prepared.train, prepared.y),
        config,
        causal=not classify,
        fingerprint=fingerprint,
        logger=logger,
    )
    tuned.history = result.history
    tuned.metrics = evaluate(tuned, encoded, prepared, texts)
    tuned.training = {
        "rows trained": len(prepared.train),
        "rows held out": len(prepared.held_out),
        "tokens trained": result.tokens,
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "tokens/s": round(result.tokens_per_s, 1),
        "parameters total": tuned.parameters()["total"],
        "parameters trainable": tuned.parameters()["trainable"],
        "truncated rows": encoded.truncated,
        "resumed from step": result.resumed_from,
        "null texts skipped": prepared.dropped_null_texts,
    }
    return tuned


def start_model(task: str, tokenizer, config: TrainingConfig, base, num_labels: int) -> dict:
    """The base model and, when it was built offline, a copy of its initial weights."""
    model = build_model(task, tokenizer, config, base=base, num_labels=num_labels)
    state = None
    if base.source == "offline":
        state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    return {"model": model, "base_state": state}


def evaluate(tuned: FineTunedModel, encoded: Encoded, prepared: Prepared, texts: list[str]) -> dict:
    """Held-out metrics of ``tuned`` beside the trivial baseline (and logistic regression)."""
    held = prepared.held_out
    if tuned.task == "sequence_classification":
        y, k = prepared.y, len(prepared.classes)
        proba = tuned.predict_proba([texts[i] for i in held])
        return {
            "model": baselines.classification_metrics(proba, y[held]),
            "trivial": baselines.classification_metrics(
                baselines.trivial_proba(y[prepared.train], k, len(held)), y[held]
            ),
            "logistic_regression": baselines.classification_metrics(
                baselines.logistic_regression_proba(
                    prepared.table,
                    prepared.features,
                    y,
                    prepared.train,
                    held,
                    seed=tuned.config.seed,
                ),
                y[held],
            ),
        }
    loss = tuned.loss([texts[i] for i in held])
    unigram = baselines.unigram_loss(
        [encoded.ids[i] for i in prepared.train],
        [encoded.ids[i] for i in held],
        len(tuned.tokenizer),
    )
    return {
        "model": {"loss": loss, "perplexity": baselines.perplexity(loss)},
        "unigram": {"loss": unigram, "perplexity": baselines.perplexity(unigram)},
    }


def subset(encoded: Encoded, rows: np.ndarray, y: np.ndarray | None) -> Encoded:
    return Encoded([encoded.ids[i] for i in rows], None if y is None else y[rows], encoded.pad_id)


def run_fingerprint(prepared: Prepared, config: TrainingConfig, *parts: Any) -> str:
    """What a checkpoint must match to be resumed: data, split, config and method."""
    settings = config.replace(**{f: getattr(TrainingConfig(), f) for f in UNTRAINED_FIELDS})
    digest = hashlib.sha256(f"{prepared.fingerprint()}|{settings.to_json()}|{parts}".encode())
    return digest.hexdigest()[:16]


def _config(config: TrainingConfig | Mapping[str, Any] | None) -> TrainingConfig:
    if config is None:
        return TrainingConfig()
    if isinstance(config, TrainingConfig):
        return config
    if isinstance(config, Mapping):
        return TrainingConfig.from_dict(dict(config))
    raise ConfigFieldError(
        "config",
        f"a {type(config).__name__} is not a config",
        "pass a TrainingConfig or a dict of its fields",
    )
