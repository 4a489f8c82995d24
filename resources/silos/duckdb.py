"""A DuckDB database file as a silo, opened read-only."""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from typing import ClassVar

import duckdb
import pyarrow as pa
from pydantic import Field
from sqlglot import exp

from fed_assets.errors import (
    ConfigurationError,
    FedAssetsError,
    SiloQueryError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownTableError,
)
from fed_assets.silo import (
    BATCH_ROWS,
    ColumnStats,
    SiloResource,
    TableStats,
    TableVersion,
    arrow_width,
    stream,
)
from resources.silos._arrow_inputs import ArrowInputs

# DuckDB keeps two database headers at these offsets; each holds a u64 little-endian `iteration`
# at +8 that rises at every checkpoint (the larger of the two is current).
_HEADER_OFFSETS = (4096, 8192)
# Connections of one process to one DuckDB file share a database; DuckDB 2.0.1 sometimes fails
# to bind a query over a registered Arrow table ("Table Function with name python_arrow_scan does
# not exist") while another connection to the same file starts a query. Queries over one file
# start one at a time (binding takes milliseconds; the rows still stream concurrently).
_START_LOCK = threading.Lock()


class DuckDBSilo(ArrowInputs, SiloResource):
    """Tables of one DuckDB file. Tables outside the ``main`` schema are named ``schema.table``."""

    kind: ClassVar[str] = "duckdb"

    path: str = Field(description="Path of the DuckDB database file.")

    @property
    def dialect(self) -> str:
        return "duckdb"

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if not os.path.exists(self.path):
            raise SiloUnreachableError(
                f"silo '{self.name}'",
                f"the DuckDB file {self.path} does not exist",
                "check the silo's 'path' setting (for the demo, run `fed-assets demo seed`)",
            )
        try:
            return duckdb.connect(self.path, read_only=True)
        except duckdb.Error as err:
            raise SiloUnreachableError(
                f"silo '{self.name}'",
                f"the DuckDB file {self.path} cannot be opened read-only: {err}",
                "make sure no other process holds it open for writing, and that it is a DuckDB "
                "database",
            ) from None

    def _query(self, sql: str, params: list | None = None) -> list[tuple]:
        con = self._connect()
        try:
            return con.execute(sql, params or []).fetchall()
        except duckdb.Error as err:
            raise self.wrap_error(err) from None
        finally:
            con.close()

    def tables(self) -> list[str]:
        rows = self._query(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
            "WHERE NOT internal AND NOT temporary ORDER BY 1, 2"
        )
        return [t if s == "main" else f"{s}.{t}" for s, t in rows]

    def table_expression(self, table: str) -> exp.Table:
        schema, _, name = table.rpartition(".")
        return exp.table_(name, db=schema or None, quoted=True)

    def schema(self, table: str) -> pa.Schema:
        table = self.require_table(table)
        sql = exp.select("*").from_(self.table_expression(table)).limit(0).sql("duckdb")
        con = self._connect()
        try:
            return con.sql(sql).to_arrow_table().schema
        except duckdb.Error as err:
            raise self.wrap_error(err, table=table) from None
        finally:
            con.close()

    def stats(self, table: str) -> TableStats:
        table = self.require_table(table)
        schema, _, name = table.rpartition(".")
        rows = self._query(
            "SELECT estimated_size FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            [schema or "main", name],
        )
        estimated = rows[0][0] if rows else None
        width = sum(arrow_width(f.type) for f in self.cached_schema(table))
        return TableStats(
            rows=estimated,
            bytes=None if estimated is None else estimated * width,
            columns={f.name: ColumnStats() for f in self.cached_schema(table)},
            exact=False,
        )

    def version(self, table: str) -> TableVersion:
        self.require_table(table)
        iteration = 0
        with open(self.path, "rb") as f:
            for offset in _HEADER_OFFSETS:
                f.seek(offset + 8)
                raw = f.read(8)
                if len(raw) == 8:
                    iteration = max(iteration, struct.unpack("<Q", raw)[0])
        parts = [f"iteration={iteration}", _file_mark(self.path), _file_mark(self.path + ".wal")]
        return TableVersion(
            fingerprint=hashlib.sha256("|".join(parts).encode()).hexdigest()[:16],
            method="metadata",
            detail="DuckDB header checkpoint iteration and file/WAL size+mtime (file-level: a "
            "change to any table of this file changes every table's version)",
        )

    def _scan(self, sql: str, inputs: dict[str, pa.Table] | None = None) -> pa.RecordBatchReader:
        with _START_LOCK:
            con = self._connect()
        close = _locked(self._interruptible(con))
        try:
            with _START_LOCK:
                for name, table in (inputs or {}).items():
                    con.register(name, table)
                reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as err:
            close()
            raise self.wrap_error(err) from None
        return stream(reader.schema, iter(reader), on_error=self.wrap_error, close=close)

    def wrap_error(self, err: Exception, *, table: str | None = None) -> FedAssetsError:
        if isinstance(err, FedAssetsError):
            return err
        text = str(err).splitlines()[0]
        if (missing := self.unsupported_function(str(err))) is not None:
            return missing
        where = f"silo '{self.name}'" + (f", table '{table}'" if table else "")
        if isinstance(err, duckdb.CatalogException) and "Table" in text:
            return UnknownTableError(where, text, f"use one of: {', '.join(self.tables())}")
        if isinstance(err, duckdb.BinderException) and "column" in text.lower():
            return UnknownColumnError(where, text, "check the column names with schema(table)")
        if isinstance(err, duckdb.IOException):
            return ConfigurationError(where, text, "check the silo's 'path' setting")
        return SiloQueryError(where, f"DuckDB failed: {text}", "check the query")


def _locked(close):
    """``close`` run under ``_START_LOCK``: a connection closing while another binds is the
    other half of the race the lock prevents."""

    def run() -> None:
        with _START_LOCK:
            close()

    return run


def _file_mark(path: str) -> str:
    """Size and modification time of ``path``, or 'absent'."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{os.path.basename(path)}:absent"
    return f"{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns}"
