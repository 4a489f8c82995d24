"""Training data checked and split: the columns a task needs, usable labels, a held-out part."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fed_assets.train.errors import ConfigFieldError, LabelError, MissingColumnError, NoRowsError
from fed_assets.train.render import template_columns

# The tasks fine_tune knows.
TASKS = ("sequence_classification", "causal_lm")


@dataclass(frozen=True)
class Prepared:
    """A task's data after checks: features (or text), labels as class indices, the split.

    Attributes:
        table: the rows used (labelled rows only), with the feature or text columns.
        features: feature columns (classification) or ``(text,)`` (causal LM).
        classes: the label values, sorted; index = class id (empty for causal LM).
        y: class id per row (``None`` for causal LM).
        train: row indices of the training split; ``held_out``: of the held-out split.
        dropped_null_texts: causal LM rows skipped because their text was null.
    """

    table: pa.Table
    features: tuple[str, ...]
    classes: tuple[Any, ...]
    y: np.ndarray | None
    train: np.ndarray
    held_out: np.ndarray
    dropped_null_texts: int = 0

    def fingerprint(self) -> str:
        """A content hash of the rows, labels and split (what a checkpoint must match)."""
        digest = hashlib.sha256()
        for batch in self.table.to_batches():
            for column in batch.columns:
                digest.update(str(column.to_pylist()).encode())
        digest.update(self.train.tobytes())
        if self.y is not None:
            digest.update(self.y.tobytes())
        return digest.hexdigest()[:16]


def as_table(data: Any) -> pa.Table:
    """A ``pyarrow.Table`` from a table, a DataFrame or a record batch reader."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas ships with dagster
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise ConfigFieldError(
        "data",
        f"a {type(data).__name__} is not a table",
        "pass a pyarrow.Table or pandas DataFrame",
    )


def prepare(
    data: Any,
    *,
    task: str,
    label: str | None,
    text: str | None,
    template: str | None,
    features: Sequence[str] | None,
    eval_fraction: float,
    seed: int,
) -> Prepared:
    """Check ``data`` for ``task`` and split it (stratified by label for classification).

    Raises:
        NoRowsError, MissingColumnError, LabelError, ConfigFieldError: see fed_assets.train.errors.
    """
    table = as_table(data)
    if task not in TASKS:
        raise ConfigFieldError("task", f"{task!r} is not a task", f"use one of {', '.join(TASKS)}")
    if table.num_rows == 0:
        raise NoRowsError(
            "training data", "it has no rows", "check the upstream query or silo table"
        )
    there = table.column_names
    if task == "causal_lm":
        _require([text], "text", there)
        kept = pc.is_valid(table.column(text))
        dropped = table.num_rows - pc.sum(kept).as_py()
        table = table.filter(kept).select([text])
        if table.num_rows < 2:
            raise NoRowsError(
                f"text column '{text}'",
                f"it has {table.num_rows} non-null text(s)",
                "give at least two",
            )
        order = np.random.default_rng(seed).permutation(table.num_rows)
        cut = max(1, int(round(len(order) * eval_fraction)))
        return Prepared(
            table, (text,), (), None, np.sort(order[cut:]), np.sort(order[:cut]), dropped
        )

    _require([label], "label", there)
    if template is not None:
        chosen = template_columns(template)
        _require(chosen, "template", there)
    elif features is not None:
        chosen = list(features)
        _require(chosen, "feature", there)
    else:
        chosen = [c for c in there if c != label]
    if label in chosen:
        raise ConfigFieldError(
            "features", f"the label column '{label}' is also a feature", "leave it out of features"
        )
    if not chosen:
        raise MissingColumnError(
            "features", f"the data has no column besides the label '{label}'", "add feature columns"
        )
    labels = table.column(label)
    nulls = labels.null_count
    if pa.types.is_floating(labels.type):
        nulls += pc.sum(pc.is_nan(pc.fill_null(labels, 0.0))).as_py() or 0
    if nulls:
        raise LabelError(
            f"label column '{label}'",
            f"{nulls} of {table.num_rows} rows have a null or NaN label",
            "drop or fill those rows before training",
        )
    values = labels.to_pylist()
    classes = tuple(sorted(set(values), key=lambda v: (str(type(v)), v)))
    if len(classes) < 2:
        raise LabelError(
            f"label column '{label}'",
            f"every row has the same label ({classes[0]!r}), so there is nothing to learn",
            "train on data holding at least two classes",
        )
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in values], dtype=np.int64)
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        rare = classes[int(counts.argmin())]
        raise LabelError(
            f"label column '{label}'",
            f"class {rare!r} has a single row, too few for a held-out split",
            "add rows of that class or merge it with another",
        )
    from sklearn.model_selection import train_test_split

    rows = np.arange(table.num_rows)
    held = max(len(classes), int(round(table.num_rows * eval_fraction)))
    if table.num_rows - held < len(classes):
        raise NoRowsError(
            "training data",
            f"{table.num_rows} rows leave too few to train after holding out {held}",
            "give more rows or lower eval_fraction",
        )
    train, held_out = train_test_split(rows, test_size=held, stratify=y, random_state=seed)
    return Prepared(
        table.select(chosen), tuple(chosen), classes, y, np.sort(train), np.sort(held_out)
    )


def _require(columns: Sequence[str | None], role: str, there: Sequence[str]) -> None:
    for column in columns:
        if column is None:
            raise ConfigFieldError(role, f"the task needs a {role} column", f"pass {role}=<column>")
        if column not in there:
            raise MissingColumnError(
                f"{role} column '{column}'",
                f"the data has no such column; it has {', '.join(there)}",
                f"pass {role}= one of those",
            )
