"""Rows to text for a language model: TabLLM's "column is value." or a custom template.

How numbers reach the tokenizer matters when the vocabulary is learnt from the data. Two
formats (``TrainingConfig.numbers``):

- ``"bins"`` (the default): each numeric column is cut at quantiles of the training split and a
  value is written as its bin's name ("very low" … "very high" for five bins, ``q3of7`` for
  other counts). One or two tokens per value, and order is explicit: measured on the demo's
  credit task it trains to a higher ROC AUC than digits (see benchmarks/training.py).
- ``"digits"``: the value itself, up to four significant digits, positional (``45000``,
  ``0.3125``). No statistics of the data are needed, so it is what federated training uses.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fed_assets.train.errors import ConfigFieldError, MissingColumnError

# Bin names a reader (and a pretrained base model) understands, for the common bin counts.
BIN_WORDS = {
    3: ("low", "medium", "high"),
    5: ("very low", "low", "medium", "high", "very high"),
}
# Significant digits of a number written as digits: enough to keep the signal, short in tokens.
DIGITS = 4
# How a missing value is written.
MISSING = "unknown"


@dataclass(frozen=True)
class Renderer:
    """Writes rows of ``columns`` as text; ``edges`` holds the quantile cuts of binned columns.

    Attributes:
        columns: the feature columns, in the order they are written.
        template: a ``str.format`` template over column names, or ``None`` for
            "column is value." per column.
        numbers: ``"bins"`` or ``"digits"``.
        edges: numeric column → ascending inner cut points (bins = len(edges) + 1).
    """

    columns: tuple[str, ...]
    template: str | None = None
    numbers: str = "bins"
    edges: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        table: pa.Table,
        columns: Sequence[str],
        *,
        template: str | None = None,
        numbers: str = "bins",
        bins: int = 5,
    ) -> Renderer:
        """A renderer for ``columns``, its bins cut at the quantiles of ``table``."""
        check_template(template, table.column_names)
        edges: dict[str, tuple[float, ...]] = {}
        if numbers == "bins":
            for name in columns:
                column = table.column(name)
                if _is_number(column.type):
                    values = pc.cast(pc.drop_null(column), pa.float64()).to_numpy()
                    values = values[np.isfinite(values)]
                    if len(values):
                        cuts = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
                        edges[name] = tuple(float(c) for c in cuts)
        return cls(columns=tuple(columns), template=template, numbers=numbers, edges=edges)

    def render(self, table: pa.Table) -> list[str]:
        """One text per row of ``table`` (which must hold every column of the renderer)."""
        missing = [c for c in self.columns if c not in table.column_names]
        if missing:
            raise MissingColumnError(
                f"column(s) {', '.join(missing)}",
                f"the model reads them but the data has only {', '.join(table.column_names)}",
                "pass a table with the columns the model was trained on",
            )
        words = {c: self._words(c, table.column(c)) for c in self.columns}
        if self.template is not None:
            return [
                self.template.format(**{c: words[c][i] for c in self.columns})
                for i in range(table.num_rows)
            ]
        labels = [c.replace("_", " ") for c in self.columns]
        return [
            " ".join(
                f"{label} is {words[c][i]}." for label, c in zip(labels, self.columns, strict=True)
            )
            for i in range(table.num_rows)
        ]

    def vocabulary_text(self) -> list[str]:
        """Text made from the renderer alone (names, bin words, digits): a tokenizer corpus that
        holds no row of data, for federated training."""
        names = [f"{c.replace('_', ' ')} is {MISSING}." for c in self.columns]
        bins = [w for words in BIN_WORDS.values() for w in words]
        return [*names, " ".join(bins), "0 1 2 3 4 5 6 7 8 9 . - true false", self.template or ""]

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "template": self.template,
            "numbers": self.numbers,
            "edges": {k: list(v) for k, v in self.edges.items()},
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Renderer:
        return cls(
            columns=tuple(values["columns"]),
            template=values.get("template"),
            numbers=values.get("numbers", "bins"),
            edges={k: tuple(v) for k, v in (values.get("edges") or {}).items()},
        )

    def _words(self, name: str, column: pa.ChunkedArray) -> list[str]:
        values = column.to_pylist()
        cuts = self.edges.get(name)
        if cuts is not None:
            names = bin_names(len(cuts) + 1)
            return [
                MISSING
                if v is None or (isinstance(v, float) and np.isnan(v))
                else names[int(np.searchsorted(cuts, float(v), side="right"))]
                for v in values
            ]
        return [format_value(v) for v in values]


def bin_names(count: int) -> tuple[str, ...]:
    """The names of ``count`` quantile bins, lowest first."""
    return BIN_WORDS.get(count) or tuple(f"q{i + 1}of{count}" for i in range(count))


def format_value(value: Any) -> str:
    """A cell as text: numbers as up to ``DIGITS`` significant digits, dates as ISO, None as
    ``MISSING``."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not np.isfinite(value):
            return MISSING
        if abs(value) >= 10**DIGITS:
            return str(int(round(value)))
        return np.format_float_positional(value, precision=DIGITS, fractional=False, trim="-")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def check_template(template: str | None, columns: Sequence[str]) -> None:
    """Refuse a template naming a column the data lacks, or one that is not a format string."""
    if template is None:
        return
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise ConfigFieldError(
            "template",
            f"{template!r} is not a format string: {err}",
            "write columns as {column_name}",
        ) from None
    unknown = [f for f in fields if f not in columns]
    if unknown or not fields:
        raise MissingColumnError(
            f"template field(s) {', '.join(unknown) or '(none)'}",
            f"a template must name columns of the data, which has {', '.join(columns)}",
            "write each column as {column_name}",
        )


def template_columns(template: str) -> list[str]:
    """The columns a template names, in order, each once."""
    seen: list[str] = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in seen:
            seen.append(name)
    return seen


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
