"""pandas on demand: the IO managers hand over DataFrames without importing pandas otherwise."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa


def wants_pandas(context: dg.InputContext) -> bool:
    """Whether the input is annotated ``pandas.DataFrame`` (pandas is imported only then)."""
    typing_type = context.dagster_type.typing_type
    return getattr(typing_type, "__module__", "").startswith("pandas") and (
        getattr(typing_type, "__name__", "") == "DataFrame"
    )


def as_arrow(obj: object) -> object:
    """``obj`` as an Arrow table when it is a pandas DataFrame; anything else unchanged."""
    if type(obj).__module__.startswith("pandas") and type(obj).__name__ == "DataFrame":
        return pa.Table.from_pandas(obj, preserve_index=False)
    return obj
