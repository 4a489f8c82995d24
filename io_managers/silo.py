"""Read-in-place IO manager: loads a silo table for a downstream asset by pushing work into the silo.

The downstream asset says what it needs in its input metadata, and only that leaves the silo:

``AssetIn(key=..., metadata={"columns": [...], "where": "amount > 0", "partition_column": "booked_at"})``

- ``columns``: the columns to read (default: all);
- ``where``: a row filter, SQL over the table's columns (DuckDB dialect; transpiled per silo);
- ``partition_column``: when the run targets a partition of the downstream asset, a time-window
  partition becomes ``column >= start AND column < end`` and a static partition
  ``column IN (keys...)``, pushed into the silo with the rest.

The value is a ``pyarrow.Table`` or, when the input is annotated ``pandas.DataFrame``, a DataFrame.
Nothing is staged or copied first; silo tables cannot be written through this manager.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import dagster as dg
import pandas as pd
import pyarrow as pa
from sqlglot import exp

from fed_assets.catalog import SILO_META, TABLE_META
from fed_assets.errors import ConfigurationError, ReadOnlyViolation, UnknownSiloError
from fed_assets.filters import combine, parse_condition
from fed_assets.silo import SiloResource


class SiloIOManager(dg.IOManager):
    """Loads silo tables in place (see module docstring); built by ``silo_io_manager``."""

    def __init__(self, silos: Mapping[str, SiloResource]):
        self.silos = dict(silos)

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        raise ReadOnlyViolation(
            f"asset {context.asset_key.to_user_string()}",
            "silo tables are read in place and never written by fed-assets",
            "give the asset that produced this output the results store IO manager "
            "(the default 'io_manager')",
        )

    def load_input(self, context: dg.InputContext) -> pa.Table | pd.DataFrame:
        silo, table = self._locate(context)
        wanted = context.definition_metadata or {}
        columns = wanted.get("columns")
        # Each condition is parsed and checked on its own, then ANDed as trees: a filter's text
        # can never reach into the partition predicate (fed_assets.filters).
        names = silo.cached_schema(silo.require_table(table)).names
        where_of = (
            f"asset {context.asset_key.to_user_string()}, silo '{silo.name}', table '{table}'"
        )
        conditions = []
        if wanted.get("where") is not None:
            conditions.append(parse_condition(wanted["where"], columns=names, where=where_of))
        partition_column = wanted.get("partition_column")
        if partition_column:
            predicate = partition_predicate(context.step_context, partition_column)
            if predicate is not None:
                conditions.append(parse_condition(predicate, columns=names, where=where_of))
        where = combine(*conditions)
        started = time.perf_counter()
        sql = silo.read_sql(table, columns=columns, where=where)
        result = silo.scan(sql).read_all()
        context.add_input_metadata(
            {
                "silo": silo.name,
                "sql pushed to silo": dg.MetadataValue.md(f"```sql\n{sql}\n```"),
                "rows read": result.num_rows,
                "bytes read": result.nbytes,
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        if context.dagster_type.typing_type is pd.DataFrame:
            return result.to_pandas()
        return result

    def _locate(self, context: dg.InputContext) -> tuple[SiloResource, str]:
        key = context.asset_key.to_user_string()
        meta = context.upstream_output.definition_metadata or {}
        name, table = meta.get(SILO_META), meta.get(TABLE_META)
        if name is None or table is None:
            raise ConfigurationError(
                f"asset {key}",
                "it is not a silo table, so the silo IO manager cannot read it",
                "load it with the IO manager that stored it",
            )
        if name not in self.silos:
            raise UnknownSiloError(
                f"silo '{name}' (asset {key})",
                "no silo resource of that name is configured",
                f"add it to the Definitions' resources; configured: {', '.join(self.silos)}",
            )
        return self.silos[name], table


def partition_predicate(step_context, column: str) -> str | None:
    """The run's partition of the current asset as a SQL predicate on ``column`` (or None)."""
    if not step_context.has_partitions:
        return None
    partitions_def = step_context.run_partitions_def
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return window_condition(column, step_context.partition_time_window).sql("duckdb")
    if step_context.has_partition_key_range and not step_context.has_partition_key:
        key_range = step_context.partition_key_range
        keys = partitions_def.get_partition_keys_in_range(key_range)
    else:
        keys = [step_context.partition_key]
    return keys_condition(column, keys).sql("duckdb")


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


def silo_io_manager(silo_names: list[str]) -> dg.IOManagerDefinition:
    """The silo IO manager, depending on the silo resources named ``silo_names``."""

    @dg.io_manager(
        required_resource_keys=set(silo_names),
        description="Reads silo tables in place, pushing columns, filters and partitions down.",
    )
    def _silo_io_manager(init_context) -> SiloIOManager:
        return SiloIOManager({n: getattr(init_context.resources, n) for n in silo_names})

    return _silo_io_manager
