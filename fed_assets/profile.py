"""A small statistical profile of a table: what a model was trained on, and what drift compares.

A model asset records ``profile(training_table)`` in its metadata (key ``PROFILE_METADATA_KEY``);
a drift check profiles the dataset now and compares it with that record (``drift``). Both are
pure functions over Arrow tables and plain dicts, so the profile survives as JSON in Dagster's
event log and needs no artefact store to be read back.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# The metadata key a model materialisation stores its training data's profile under.
PROFILE_METADATA_KEY = "training data profile"
# A categorical column keeps its most frequent values only: enough to see a shift in the mix,
# small enough for event-log metadata.
TOP_CATEGORIES = 20


def profile(table: pa.Table) -> dict[str, Any]:
    """Rows, and per column: null fraction plus mean/std (numeric) or value shares (other)."""
    rows = table.num_rows
    columns: dict[str, dict[str, Any]] = {}
    for name in table.column_names:
        column = table.column(name)
        entry: dict[str, Any] = {"null_fraction": (column.null_count / rows) if rows else 0.0}
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            values = pc.cast(column, pa.float64())
            mean = pc.mean(values).as_py()
            std = pc.stddev(values, ddof=0).as_py()
            entry.update(kind="numeric", mean=mean, std=std)
        elif (
            pa.types.is_boolean(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
        ):
            counts = pc.value_counts(pc.drop_null(column)).to_pylist()
            counts.sort(key=lambda c: (-c["counts"], str(c["values"])))
            present = sum(c["counts"] for c in counts) or 1
            entry.update(
                kind="categorical",
                distinct=len(counts),
                shares={str(c["values"]): c["counts"] / present for c in counts[:TOP_CATEGORIES]},
            )
        else:
            entry.update(kind="other")
        columns[name] = entry
    return {"rows": rows, "columns": columns}


def drift(reference: dict[str, Any], current: dict[str, Any]) -> dict[str, float]:
    """Per column, how far ``current`` moved from ``reference`` (0 = not at all).

    Numeric: the shift of the mean in reference standard deviations (|Δmean| / std), plus the
    change in null fraction. Categorical: the total variation distance between value shares
    (half the sum of absolute differences), plus the change in null fraction. A column present
    in one profile only scores ``inf``.
    """
    scores: dict[str, float] = {}
    ref_cols, cur_cols = reference["columns"], current["columns"]
    for name in sorted(set(ref_cols) | set(cur_cols)):
        ref, cur = ref_cols.get(name), cur_cols.get(name)
        if ref is None or cur is None or ref.get("kind") != cur.get("kind"):
            scores[name] = math.inf
            continue
        nulls = abs(cur["null_fraction"] - ref["null_fraction"])
        if ref["kind"] == "numeric":
            if ref["mean"] is None or cur["mean"] is None:
                scores[name] = nulls if ref["mean"] == cur["mean"] else math.inf
                continue
            spread = ref["std"] or abs(ref["mean"]) or 1.0
            scores[name] = abs(cur["mean"] - ref["mean"]) / spread + nulls
        elif ref["kind"] == "categorical":
            keys = set(ref["shares"]) | set(cur["shares"])
            tvd = sum(abs(ref["shares"].get(k, 0.0) - cur["shares"].get(k, 0.0)) for k in keys) / 2
            scores[name] = tvd + nulls
        else:
            scores[name] = nulls
    return scores
