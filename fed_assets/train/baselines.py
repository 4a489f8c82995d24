"""Held-out metrics, and the two baselines every model is shown beside.

Classification: accuracy, ROC AUC (one-vs-rest macro for several classes) and F1 (of the positive
class when binary, macro otherwise), for the model, the trivial baseline (the training split's
class shares for every row) and logistic regression on the same columns and split. Causal LM:
loss (nats per token) and perplexity, for the model and a unigram model of the training tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

# A string column with more distinct values than this is free text: TF-IDF, not one-hot.
FREE_TEXT_DISTINCT = 50
# Iterations for scikit-learn's solver: enough to converge on the demo's standardised features.
LOGREG_MAX_ITER = 2_000


def classification_metrics(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, ROC AUC and F1 of class probabilities ``proba`` (rows × classes) against ``y``."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    predicted = proba.argmax(axis=1)
    binary = proba.shape[1] == 2
    present = np.unique(y)
    if len(present) < 2:
        auc = float("nan")
    elif binary:
        auc = roc_auc_score(y, proba[:, 1])
    else:
        scores = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
        auc = roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=present)
    f1 = f1_score(y, predicted, average="binary" if binary else "macro", zero_division=0)
    return {"accuracy": float(accuracy_score(y, predicted)), "roc_auc": float(auc), "f1": float(f1)}


def trivial_proba(y_train: np.ndarray, classes: int, rows: int) -> np.ndarray:
    """The majority/prior baseline: every row gets the training split's class shares."""
    shares = np.bincount(y_train, minlength=classes) / len(y_train)
    return np.tile(shares, (rows, 1))


def logistic_regression_proba(
    table: pa.Table,
    features: Sequence[str],
    y: np.ndarray,
    train: np.ndarray,
    held_out: np.ndarray,
    *,
    seed: int,
) -> np.ndarray:
    """Logistic regression on ``features`` (numbers standardised, categories one-hot, free text
    TF-IDF), fitted on ``train`` rows and scored on ``held_out`` rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = table.select(list(features)).to_pandas()
    parts = []
    for name in features:
        kind = table.schema.field(name).type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            frame[name] = frame[name].astype(float)
            parts.append((name, make_pipeline(SimpleImputer(), StandardScaler()), [name]))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            frame[name] = frame[name].fillna("")
            if frame[name].nunique() > FREE_TEXT_DISTINCT:
                parts.append((name, TfidfVectorizer(), name))
            else:
                parts.append((name, OneHotEncoder(handle_unknown="ignore"), [name]))
        else:
            frame[name] = frame[name].astype(str)
            parts.append((name, OneHotEncoder(handle_unknown="ignore"), [name]))
    model = make_pipeline(
        ColumnTransformer(parts), LogisticRegression(max_iter=LOGREG_MAX_ITER, random_state=seed)
    )
    model.fit(frame.iloc[train], y[train])
    proba = np.zeros((len(held_out), int(y.max()) + 1))
    proba[:, model.classes_] = model.predict_proba(frame.iloc[held_out])
    return proba


def unigram_loss(
    train_ids: Sequence[Sequence[int]], held_ids: Sequence[Sequence[int]], vocab: int
) -> float:
    """Nats per predicted token of an add-one unigram model of the training tokens.

    Scores the same targets a causal LM predicts: every token after the first of each example.
    """
    counts = np.ones(vocab)
    for seq in train_ids:
        np.add.at(counts, np.asarray(seq[1:], dtype=np.int64), 1)
    logp = np.log(counts / counts.sum())
    targets = np.concatenate([np.asarray(s[1:], dtype=np.int64) for s in held_ids if len(s) > 1])
    return float(-logp[targets].mean())


def perplexity(loss: float) -> float:
    return float(math.exp(min(loss, 700.0)))
