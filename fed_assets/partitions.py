"""A run's partition as a condition on a column: sqlglot trees that are pushed into the silos.

A time window becomes ``column >= start AND column < end``; static or dynamic keys become
``column IN (keys...)``. The read-in-place IO manager and ``federated_asset`` both use these, so a
partition is read the same way whichever of them reads it.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from sqlglot import exp


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
