"""A dataset's quality rules as a value, validated by a great-expectations 1.x suite.

``DatasetSuite`` says what a training set must look like (rows, nulls, ranges, uniqueness, label
balance); ``validate`` builds the matching great-expectations suite in an ephemeral context and
runs it over an Arrow table. great-expectations takes about 6 s to import, so it is imported on
the first validation, never when this module (or ``fed_assets``) is imported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

# great-expectations sends usage analytics unless told not to; these machines are offline.
_GX_ENV = {"GX_ANALYTICS_ENABLED": "False"}


@dataclass(frozen=True)
class DatasetSuite:
    """What a dataset that feeds a model must satisfy.

    Attributes:
        min_rows, max_rows: bounds on the row count (``max_rows`` None: unbounded).
        not_null: columns that may hold no null.
        ranges: column → (lowest, highest) allowed value; ``None`` leaves that side open.
        unique: columns whose values must not repeat (a key).
        label: the binary label column (0/1 or boolean) whose positive share is checked.
        label_share: (lowest, highest) allowed share of positive labels.
        name: the suite's name in great-expectations and in check metadata.
    """

    min_rows: int = 1
    max_rows: int | None = None
    not_null: tuple[str, ...] = ()
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    unique: tuple[str, ...] = ()
    label: str | None = None
    label_share: tuple[float, float] = (0.01, 0.99)
    name: str = "dataset"

    def __post_init__(self) -> None:
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise ValueError(f"max_rows ({self.max_rows}) is below min_rows ({self.min_rows})")
        low, high = self.label_share
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"label_share must be 0 <= low <= high <= 1, not {self.label_share}")
        for column, (lo, hi) in self.ranges.items():
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"ranges[{column!r}]: lowest {lo} is above highest {hi}")

    def columns(self) -> set[str]:
        """Every column the suite names."""
        named = {*self.not_null, *self.ranges, *self.unique}
        return named | ({self.label} if self.label else set())

    def describe(self) -> str:
        """The rules in one paragraph (shown as the check's description)."""
        parts = [f"rows in [{self.min_rows}, {self.max_rows if self.max_rows else '∞'}]"]
        if self.not_null:
            parts.append(f"no nulls in {', '.join(self.not_null)}")
        for column, (lo, hi) in self.ranges.items():
            parts.append(f"{column} in [{'-∞' if lo is None else lo}, {'∞' if hi is None else hi}]")
        if self.unique:
            parts.append(f"unique {', '.join(self.unique)}")
        if self.label:
            low, high = self.label_share
            parts.append(f"share of positive {self.label} in [{low:.0%}, {high:.0%}]")
        return "great-expectations suite: " + "; ".join(parts)


@dataclass(frozen=True)
class Outcome:
    """The result of one expectation."""

    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None
    observed: Any = None


@dataclass(frozen=True)
class Validation:
    """Every expectation's outcome for one table."""

    outcomes: tuple[Outcome, ...]
    rows: int

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    @property
    def failing_rows(self) -> int:
        """Sum of unexpected values over the failed expectations that count them."""
        return sum(o.unexpected_count or 0 for o in self.failed)

    def summary(self) -> str:
        """A line naming each failed expectation and its column (or 'all passed')."""
        if self.success:
            return f"all {len(self.outcomes)} expectations passed on {self.rows:,} rows"
        return "; ".join(
            f"{o.expectation}({o.column or 'table'}): "
            + (
                f"{o.unexpected_count} unexpected"
                if o.unexpected_count
                else f"observed {o.observed}"
            )
            for o in self.failed
        )


def expectations(suite: DatasetSuite) -> list[Any]:
    """The great-expectations expectation objects for ``suite``."""
    gx = _gx()
    out = [
        gx.expectations.ExpectTableRowCountToBeBetween(
            min_value=suite.min_rows, max_value=suite.max_rows
        ),
        gx.expectations.ExpectTableColumnsToMatchSet(
            column_set=sorted(suite.columns()), exact_match=False
        ),
    ]
    out += [gx.expectations.ExpectColumnValuesToNotBeNull(column=c) for c in suite.not_null]
    out += [
        gx.expectations.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi)
        for c, (lo, hi) in suite.ranges.items()
    ]
    out += [gx.expectations.ExpectColumnValuesToBeUnique(column=c) for c in suite.unique]
    if suite.label:
        low, high = suite.label_share
        out.append(
            gx.expectations.ExpectColumnMeanToBeBetween(
                column=suite.label, min_value=low, max_value=high
            )
        )
    return out


def validate(suite: DatasetSuite, table: pa.Table) -> Validation:
    """Run ``suite`` over ``table`` in an ephemeral great-expectations context."""
    gx = _gx()
    context = gx.get_context(mode="ephemeral")
    try:
        return _run(gx, context, suite, table)
    finally:  # an ephemeral context still makes a temporary folder for its docs site
        for site in (context.variables.data_docs_sites or {}).values():
            folder = site.get("store_backend", {}).get("base_directory")
            if folder and folder.startswith(tempfile.gettempdir()):
                shutil.rmtree(folder, ignore_errors=True)


def _run(gx: Any, context: Any, suite: DatasetSuite, table: pa.Table) -> Validation:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no bars in run logs
    batch = (
        context.data_sources.add_pandas(f"{suite.name}_source")
        .add_dataframe_asset(suite.name)
        .add_batch_definition_whole_dataframe("whole")
    )
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name))
    for expectation in expectations(suite):
        gx_suite.add_expectation(expectation)
    frame = table.to_pandas()
    if suite.label and suite.label in frame:  # a boolean label's mean is its positive share
        frame[suite.label] = frame[suite.label].astype("float64")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch, suite=gx_suite, name=f"{suite.name}_validation")
    )
    result = definition.run(batch_parameters={"dataframe": frame})
    outcomes = []
    for r in result.results:
        config = r.expectation_config
        details = r.result or {}
        outcomes.append(
            Outcome(
                expectation=config.type,
                column=config.kwargs.get("column"),
                success=bool(r.success),
                unexpected_count=details.get("unexpected_count"),
                observed=_plain(details.get("observed_value")),
            )
        )
    return Validation(tuple(outcomes), table.num_rows)


def _plain(value: Any) -> Any:
    """A JSON-friendly form of an observed value (numpy scalars, lists)."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _gx() -> Any:
    for key, value in _GX_ENV.items():
        os.environ.setdefault(key, value)
    import great_expectations as gx  # 6 s: imported on first validation only

    return gx
