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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa

from fed_assets import metadata as md
from fed_assets.catalog import SILO_META, TABLE_META, read_observation, record_read
from fed_assets.errors import ConfigurationError, ReadOnlyViolation, UnknownSiloError
from fed_assets.filters import combine, parse_condition
from fed_assets.partitions import files_in_partition, step_partition_condition
from fed_assets.silo import SiloResource
from io_managers._frames import wants_pandas

if TYPE_CHECKING:
    import pandas as pd


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
        # Each condition is parsed and checked on its own, then ANDed as trees: a filter's text
        # can never reach into the partition predicate (fed_assets.filters).
        names = silo.cached_schema(silo.require_table(table)).names
        where_of = (
            f"asset {context.asset_key.to_user_string()}, silo '{silo.name}', table '{table}'"
        )
        conditions = []
        if wanted.get("where") is not None:
            conditions.append(parse_condition(wanted["where"], columns=names, where=where_of))
        step = _step_of(context)
        partition = None
        if wanted.get("partition_column") and step is not None:
            partition = step_partition_condition(step, wanted["partition_column"])
            if partition is not None:
                conditions.append(parse_condition(partition, columns=names, where=where_of))
        where = combine(*conditions)
        started = time.perf_counter()
        # The version is read before the rows: a change during the read shows at the next look.
        version = silo.version(table)
        sql = silo.read_sql(table, columns=wanted.get("columns"), where=where)
        result = silo.scan(sql).read_all()
        seconds = time.perf_counter() - started
        if step is not None:
            read = TableRead(
                input_name=context.name,
                silo=silo.name,
                table=table,
                sql=sql,
                dialect=silo.dialect,
                rows=result.num_rows,
                bytes=result.nbytes,
                seconds=seconds,
                fingerprint=version.fingerprint,
                files=files_in_partition(silo, table, partition),
            )
            record_read(step, read_observation(context.asset_key, version, read.source_metadata()))
            _add_to_outputs(step, read)
        if wants_pandas(context):
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


def silo_io_manager(silo_names: list[str]) -> dg.IOManagerDefinition:
    """The silo IO manager, depending on the silo resources named ``silo_names``."""

    @dg.io_manager(
        required_resource_keys=set(silo_names),
        description="Reads silo tables in place, pushing columns, filters and partitions down.",
    )
    def _silo_io_manager(init_context) -> SiloIOManager:
        return SiloIOManager({n: getattr(init_context.resources, n) for n in silo_names})

    return _silo_io_manager


@dataclass(frozen=True)
class TableRead:
    """What one input's read of a silo table did, for the metadata of both sides."""

    input_name: str
    silo: str
    table: str
    sql: str
    dialect: str
    rows: int
    bytes: int
    seconds: float
    fingerprint: str
    files: tuple[int, int] | None = None
    """(files with rows in the run's partition, files present) for a partitioned lake read."""

    def row(self) -> dict[str, Any]:
        """One row of the reading asset's ``silo reads`` table."""
        return {
            "input": self.input_name,
            "silo table": f"{self.silo}.{self.table}",
            "rows": self.rows,
            "MB": round(self.bytes / 1e6, 3),
            "seconds": round(self.seconds, 3),
            "files read": f"{self.files[0]} of {self.files[1]}" if self.files else None,
            "version": self.fingerprint[:12],
        }

    def source_metadata(self) -> dict[str, Any]:
        """What the source table's observation shows of this read."""
        out: dict[str, Any] = {
            "sql pushed to silo": md.sql_markdown(self.sql, self.dialect),
            "rows read": self.rows,
            "bytes read": self.bytes,
            "seconds": round(self.seconds, 3),
        }
        if self.files:
            out["files read"] = self.files[0]
            out["files present"] = self.files[1]
        return out


def _add_to_outputs(step, read: TableRead) -> None:
    """Show ``read`` on every asset the step materialises: its SQL, and a row of a table of all
    the step's reads (rows, MB, seconds, files read of present)."""
    for key in sorted(step.get_output_asset_keys(), key=lambda k: k.to_string()):
        before = (step.get_asset_metadata(asset_key=key) or {}).get("silo reads")
        rows = [dict(r.data) for r in before.value.records] if before is not None else []
        step.add_asset_metadata(
            {
                "silo reads": md.table([*rows, read.row()], columns=list(read.row())),
                f"sql read/{read.input_name}": md.sql_markdown(
                    read.sql, read.dialect, title=f"{read.silo}.{read.table}"
                ),
                f"rows read/{read.input_name}": read.rows,
            },
            asset_key=key,
        )


def _step_of(context: dg.InputContext):
    """The running step's context; ``None`` outside a run (``build_input_context``)."""
    try:
        return context.step_context
    except dg.DagsterInvariantViolationError:
        return None
