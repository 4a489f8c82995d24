"""Small tables with planted signal, and a tiny training config, for the training tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from fed_assets.train.config import TrainingConfig

# Tiny on purpose: one layer, width 32, context 64, a few hundred steps at most.
TINY = TrainingConfig(
    epochs=3,
    batch_size=16,
    learning_rate=5e-3,
    max_length=64,
    n_layer=1,
    n_embd=32,
    n_head=2,
    vocab_size=400,
    log_every=1000,
)


def loans(rows: int = 300, *, seed: int = 0, classes: int = 2) -> pa.Table:
    """Loans whose label follows ``grade`` (and income a little): learnable in a few steps."""
    rng = np.random.default_rng(seed)
    grade = rng.choice(["a", "b", "c"], rows)
    income = np.round(rng.lognormal(10.5, 0.4, rows), -2)
    risk = (grade == "c") * 2.0 + (grade == "b") * 0.6 - (income > 40_000) * 0.5
    noisy = risk + rng.normal(0, 0.4, rows)
    if classes == 2:
        label = noisy > 1.0
    else:
        label = np.array(["low", "mid", "high"])[np.digitize(noisy, [0.3, 1.3])]
    return pa.table(
        {"grade": grade, "income": income, "region": rng.choice(["n", "s"], rows), "label": label}
    )


def notes(rows: int = 200, *, seed: int = 0) -> pa.Table:
    """Short case notes built from a small phrase book: a unigram model cannot see the order."""
    rng = np.random.default_rng(seed)
    phrases = [
        "cash deposits below the threshold",
        "transfers to an offshore account",
        "salary and household spending",
        "invoices explain the payments",
    ]
    texts = [
        f"case {rng.integers(1, 9)}: {rng.choice(phrases)}; {rng.choice(phrases)}."
        for _ in range(rows)
    ]
    return pa.table({"narrative": texts})


@pytest.fixture
def tiny() -> TrainingConfig:
    return TINY
