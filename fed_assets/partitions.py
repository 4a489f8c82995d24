"""A run's partition as a condition on a column: sqlglot trees that are pushed into the silos.

A time window becomes ``column >= start AND column < end``; static or dynamic keys become
``column IN (keys...)``. The read-in-place IO manager and ``federated_asset`` both use these, so a
partition is read the same way whichever of them reads it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import dagster as dg
import pyarrow as pa
from sqlglot import exp

# Files a partitioned lake read counts against (reading each one's footer): beyond this, counting
# would cost more than the read it describes, so the metadata leaves it out.
MAX_FILES_COUNTED = 1000


def window_condition(column: str, window: dg.TimeWindow) -> exp.Expression:
    """``column >= start AND column < end`` for a partition time window (naive timestamps)."""
    col = exp.column(column, quoted=True)
    start, end = (
        exp.cast(exp.Literal.string(t.replace(tzinfo=None).isoformat(sep=" ")), "TIMESTAMP")
        for t in (window.start, window.end)
    )
    return exp.and_(col >= start, col < end)


def keys_condition(column: str, keys: Sequence[str]) -> exp.Expression:
    """``column IN (keys...)`` for static or dynamic partition keys."""
    return exp.column(column, quoted=True).isin(*[exp.Literal.string(k) for k in keys])


def partition_condition(
    column: str,
    partitions_def: dg.PartitionsDefinition,
    *,
    time_window: dg.TimeWindow | None,
    keys: Sequence[str],
) -> exp.Expression:
    """The partition(s) a run targets as a condition on ``column``.

    Args:
        partitions_def: the partitions of the asset the run materialises.
        time_window: the run's window (for time-window partitions; may span several keys).
        keys: the run's partition keys (for any other partitions).
    """
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition) and time_window is not None:
        return window_condition(column, time_window)
    return keys_condition(column, keys)


def step_partition_condition(step_context, column: str) -> exp.Expression | None:
    """The running step's partition (a key or a range of keys) as a condition on ``column``;
    ``None`` when the run targets no partition.

    Args:
        step_context: the step's execution context (``InputContext.step_context``).
    """
    if not step_context.has_partitions:
        return None
    partitions_def = step_context.run_partitions_def
    window = (
        step_context.partition_time_window
        if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
        else None
    )
    if step_context.has_partition_key_range and not step_context.has_partition_key:
        keys = partitions_def.get_partition_keys_in_range(step_context.partition_key_range)
    else:
        keys = [step_context.partition_key]
    return partition_condition(column, partitions_def, time_window=window, keys=keys)


def asset_partition_condition(
    context: dg.AssetExecutionContext, column: str
) -> exp.Expression | None:
    """The asset run's partition (a key or a range) as a condition on ``column``; ``None`` when
    the run targets no partition."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    partitions_def = context.assets_def.partitions_def
    window = (
        context.partition_time_window
        if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
        else None
    )
    return partition_condition(
        column, partitions_def, time_window=window, keys=context.partition_keys
    )


def files_in_partition(
    silo, table: str, partition: exp.Expression | None
) -> tuple[int, int] | None:
    """For a file silo's table read narrowed to a partition: (files whose row groups may hold
    rows of the partition, by their footers' statistics and partition folders; files present).
    ``None`` for other silos, no partition, or too many files to count cheaply.

    Args:
        silo: a silo; only one with ``dataset(table)`` (Parquet, Delta) has files to count.
        partition: a condition made by this module.
    """
    if partition is None or not hasattr(silo, "dataset"):
        return None
    arrow_filter = _arrow_filter(partition)
    if arrow_filter is None:
        return None
    fragments = list(silo.dataset(table).get_fragments())
    if len(fragments) > MAX_FILES_COUNTED:
        return None
    read = sum(1 for f in fragments if f.subset(arrow_filter).row_groups)
    return read, len(fragments)


def _arrow_filter(condition: exp.Expression):
    """The partition conditions of ``fed_assets.partitions`` as a pyarrow dataset filter."""
    import pyarrow.compute as pc

    if isinstance(condition, exp.And):
        left, right = (_arrow_filter(c) for c in (condition.left, condition.right))
        return None if left is None or right is None else left & right
    if isinstance(condition, (exp.GTE, exp.LT)) and isinstance(condition.this, exp.Column):
        value = _literal(condition.expression)
        field = pc.field(condition.this.name)
        return (
            None
            if value is None
            else (field >= value if isinstance(condition, exp.GTE) else field < value)
        )
    if isinstance(condition, exp.In) and isinstance(condition.this, exp.Column):
        values = [_literal(v) for v in condition.expressions]
        return None if None in values else pc.field(condition.this.name).isin(values)
    return None


def _literal(node: exp.Expression):
    """A string literal, or a string cast to TIMESTAMP, as a Python value; None otherwise."""
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.TIMESTAMP:
        inner = _literal(node.this)
        return (
            None
            if inner is None
            else pa.scalar(dt.datetime.fromisoformat(inner), pa.timestamp("us"))
        )
    if isinstance(node, exp.Literal) and node.is_string:
        return node.this
    return None
