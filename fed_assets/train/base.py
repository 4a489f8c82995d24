"""The model a fine-tune starts from: a Hugging Face id or folder, or an offline GPT-2 from a config.

``HF_HUB_OFFLINE=1`` is honoured: an id then loads only from the local cache, and one that is not
there is refused with the way to supply a local folder instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fed_assets.train.config import TrainingConfig
from fed_assets.train.errors import BaseModelError, ConfigFieldError

# Fine-tuning methods: LoRA adapters (peft) or every weight.
METHODS = ("lora", "full")
# Modules LoRA trains whole on an offline (randomly initialised) base: its embeddings.
OFFLINE_SAVED = ("wte", "wpe")


@dataclass(frozen=True)
class BaseSpec:
    """Where the weights came from: ``offline`` (built from the config) or a hub id / folder."""

    source: str  # "offline" or "pretrained"
    name: str | None = None  # hub id or folder for "pretrained"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "name": self.name}


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def load_pretrained_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            name, local_files_only=offline() or Path(name).is_dir()
        )
    except (OSError, ValueError) as err:
        raise _not_found(name, err) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_model(
    task: str,
    tokenizer,
    config: TrainingConfig,
    *,
    base: BaseSpec,
    num_labels: int = 0,
):
    """The base model for ``task`` (weights initialised from ``config.seed`` when offline)."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        GPT2Config,
        GPT2ForSequenceClassification,
        GPT2LMHeadModel,
    )

    classify = task == "sequence_classification"
    if base.source == "offline":
        torch.manual_seed(config.seed)
        gpt2 = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=config.max_length,
            n_embd=config.n_embd,
            n_layer=config.n_layer,
            n_head=config.n_head,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            num_labels=max(num_labels, 2),
        )
        return GPT2ForSequenceClassification(gpt2) if classify else GPT2LMHeadModel(gpt2)
    local = offline() or Path(base.name).is_dir()
    try:
        if classify:
            model = AutoModelForSequenceClassification.from_pretrained(
                base.name, num_labels=num_labels, local_files_only=local
            )
        else:
            model = AutoModelForCausalLM.from_pretrained(base.name, local_files_only=local)
    except (OSError, ValueError) as err:
        raise _not_found(base.name, err) from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def with_method(model, task: str, method: str, config: TrainingConfig, *, base: BaseSpec):
    """``model`` ready to train: wrapped in LoRA adapters (peft) or left whole.

    A base built offline has random weights, so there is nothing for adapters alone to adapt
    in its embeddings: LoRA then also trains the token and position embeddings (``OFFLINE_SAVED``,
    and an LM's output layer) — still a small share of the parameters, saved with the adapter.
    """
    if method not in METHODS:
        raise ConfigFieldError("method", f"{method!r} is not a method", f"use one of {METHODS}")
    if method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in config.lora_targets if t not in names]
    if missing:
        raise ConfigFieldError(
            "lora_targets",
            f"the model has no module named {', '.join(missing)}",
            f"name modules it has, e.g. {', '.join(sorted(n for n in names if n)[:8])}",
        )
    lora = LoraConfig(
        task_type="SEQ_CLS" if task == "sequence_classification" else "CAUSAL_LM",
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        fan_in_fan_out=model.config.model_type == "gpt2",
        modules_to_save=_offline_saved(model, task) if base.source == "offline" else None,
    )
    return get_peft_model(model, lora)


def _offline_saved(model, task: str) -> list[str]:
    """Embeddings (and, for an LM, its output layer) to train whole on an offline base."""
    return [*OFFLINE_SAVED, "lm_head"] if task == "causal_lm" else list(OFFLINE_SAVED)


def resolve_base(base_model: str | None) -> BaseSpec:
    """A ``BaseSpec`` for a ``fine_tune(base_model=...)`` argument."""
    if base_model is None:
        return BaseSpec("offline")
    if not isinstance(base_model, str) or not base_model.strip():
        raise ConfigFieldError(
            "base_model",
            f"{base_model!r} is not a model id or folder",
            "pass a Hugging Face id, a local folder, or None",
        )
    return BaseSpec("pretrained", base_model)


def _not_found(name: str, err: Exception) -> BaseModelError:
    where = (
        "HF_HUB_OFFLINE is set and it is not in the local cache" if offline() else str(err)[:200]
    )
    return BaseModelError(
        f"base model '{name}'",
        f"it cannot be loaded ({where})",
        "download it where the hub is reachable (huggingface-cli download <id> --local-dir DIR) "
        "and pass base_model='DIR', or pass base_model=None for the offline GPT-2 built from the "
        "config with a tokenizer trained on your data",
    )
