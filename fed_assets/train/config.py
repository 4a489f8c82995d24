"""``TrainingConfig``: the checked settings of one fine-tune, with a JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from fed_assets.train.errors import ConfigFieldError

# Number formats a row renderer knows (see fed_assets.train.render).
NUMBER_FORMATS = ("bins", "digits")


@dataclass(frozen=True)
class TrainingConfig:
    """How to fine-tune; every field is checked when the config is made, errors name the field.

    The defaults train the offline base model (2 layers, width 64, context 64) in seconds on two
    CPU cores: enough for the demo's tables to beat their trivial baselines.
    """

    epochs: float = field(default=3.0, metadata={"help": "Passes over the training split (> 0)."})
    batch_size: int = field(default=16, metadata={"help": "Rows per optimiser step (1–4096)."})
    learning_rate: float = field(
        default=2e-3, metadata={"help": "AdamW learning rate (0 < lr ≤ 10)."}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (0–1)."})
    warmup_fraction: float = field(
        default=0.05, metadata={"help": "Share of steps with a linear warm-up (0–1)."}
    )
    max_grad_norm: float | None = field(
        default=1.0, metadata={"help": "Gradient clipping norm; None switches clipping off."}
    )
    max_length: int = field(
        default=64, metadata={"help": "Tokens per example; longer texts are truncated (8–8192)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of split, initialisation and order."})
    eval_fraction: float = field(
        default=0.2, metadata={"help": "Share of rows held out for metrics (0 < f < 1)."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (1–256)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha (≥ 1)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (0–1)."})
    lora_targets: tuple[str, ...] = field(
        default=("c_attn",), metadata={"help": "Module names LoRA adapts (GPT-2: c_attn)."}
    )
    numbers: str = field(
        default="bins",
        metadata={
            "help": "How numbers are written for the tokenizer: 'bins' (quantile bin "
            "labels, the default) or 'digits' (the value's digits)."
        },
    )
    bins: int = field(default=5, metadata={"help": "Quantile bins per numeric column (2–100)."})
    vocab_size: int = field(
        default=512, metadata={"help": "Vocabulary of a tokenizer trained on the data (64–65536)."}
    )
    n_layer: int = field(default=2, metadata={"help": "Offline base model: layers (1–48)."})
    n_embd: int = field(default=64, metadata={"help": "Offline base model: width (8–4096)."})
    n_head: int = field(default=2, metadata={"help": "Offline base model: heads (divides n_embd)."})
    checkpoint_dir: str | None = field(
        default=None, metadata={"help": "Folder for checkpoints; a rerun resumes from it."}
    )
    checkpoint_every: int = field(
        default=50, metadata={"help": "Optimiser steps between checkpoints (≥ 1)."}
    )
    log_every: int = field(default=10, metadata={"help": "Steps between progress lines (≥ 1)."})
    max_steps: int | None = field(
        default=None, metadata={"help": "Stop after this many steps (None: epochs decide)."}
    )

    def __post_init__(self) -> None:
        _range("epochs", self.epochs, 0, 10_000, low_open=True)
        _range("batch_size", self.batch_size, 1, 4096)
        _range("learning_rate", self.learning_rate, 0, 10, low_open=True)
        _range("weight_decay", self.weight_decay, 0, 1)
        _range("warmup_fraction", self.warmup_fraction, 0, 1)
        if self.max_grad_norm is not None:
            _range("max_grad_norm", self.max_grad_norm, 0, 1e6, low_open=True)
        _range("max_length", self.max_length, 8, 8192)
        _range("eval_fraction", self.eval_fraction, 0, 1, low_open=True, high_open=True)
        _range("lora_r", self.lora_r, 1, 256)
        _range("lora_alpha", self.lora_alpha, 1, 10_000)
        _range("lora_dropout", self.lora_dropout, 0, 1)
        if not self.lora_targets or not all(isinstance(t, str) and t for t in self.lora_targets):
            raise ConfigFieldError(
                "lora_targets", f"{self.lora_targets!r} names no module", "name e.g. ('c_attn',)"
            )
        if self.numbers not in NUMBER_FORMATS:
            raise ConfigFieldError(
                "numbers",
                f"{self.numbers!r} is not a number format",
                f"use one of {NUMBER_FORMATS}",
            )
        _range("bins", self.bins, 2, 100)
        _range("vocab_size", self.vocab_size, 64, 65_536)
        _range("n_layer", self.n_layer, 1, 48)
        _range("n_embd", self.n_embd, 8, 4096)
        _range("n_head", self.n_head, 1, 64)
        if self.n_embd % self.n_head:
            raise ConfigFieldError(
                "n_head",
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}",
                "choose n_head dividing n_embd",
            )
        _range("checkpoint_every", self.checkpoint_every, 1, 10**9)
        _range("log_every", self.log_every, 1, 10**9)
        if self.max_steps is not None:
            _range("max_steps", self.max_steps, 1, 10**9)

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with ``changes`` applied (checked again)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainingConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """A config from a plain dict; an unknown key is refused by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigFieldError(
                    key, "is not a TrainingConfig field", f"use one of {', '.join(sorted(known))}"
                )
        values = dict(values)
        if "lora_targets" in values:
            values["lora_targets"] = tuple(values["lora_targets"])
        return cls(**values)


def _range(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigFieldError(
            name, f"{value!r} is not a number", f"give a number in [{low}, {high}]"
        )
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ConfigFieldError(
            name,
            f"{value!r} is outside {lo}{low}, {high}{hi}",
            f"give a value in {lo}{low}, {high}{hi}",
        )
