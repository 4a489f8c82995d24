"""A DuckDB database file as a silo, opened read-only."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import struct
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar

import duckdb
import pyarrow as pa
from pydantic import Field, PrivateAttr
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
from resources.silos import _duckdb_keeper
from resources.silos._arrow_inputs import ArrowInputs
from resources.silos._duckdb_stats import table_column_stats

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
    keep_open_s: float = Field(
        default=_duckdb_keeper.KEEP_OPEN_S,
        ge=0,
        description="Seconds the file stays open (read-only) after the federated query that "
        "opened it ends, so back-to-back queries open it once; a writer, in another process or "
        "this one, waits that long. 0 (default) closes it as soon as the query ends.",
    )

    @property
    def dialect(self) -> str:
        return "duckdb"

    _holds: _Holds = PrivateAttr(default_factory=lambda: _Holds())

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the file open until the block ends (one federated query: its schema look-ups,
        statistics and fragments open the file once), then as ``keep_open_s`` says."""
        self._holds.enter()
        try:
            yield
        finally:
            if self._holds.leave():
                _duckdb_keeper.settle(self.path, self.keep_open_s)

    def _connect(self) -> tuple[duckdb.DuckDBPyConnection, Callable[[], None]]:
        """A read-only connection to the file and the function that releases it."""
        keep = math.inf if self._holds.active() else self.keep_open_s
        return _duckdb_keeper.cursor(self.path, keep_open_s=keep, connect=self._open)

    def close(self) -> None:
        """Close the file now if no scan is using it (else when the last one ends)."""
        _duckdb_keeper.close_path(self.path)

    def _open(self) -> duckdb.DuckDBPyConnection:
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
        con, release = self._connect()
        try:
            return con.execute(sql, params or []).fetchall()
        except duckdb.Error as err:
            raise self.wrap_error(err) from None
        finally:
            release()

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
        con, release = self._connect()
        try:
            return con.sql(sql).to_arrow_table().schema
        except duckdb.Error as err:
            raise self.wrap_error(err, table=table) from None
        finally:
            release()

    def stats(self, table: str) -> TableStats:
        """Estimated rows (DuckDB's own count), and per column the range and distinct count
        DuckDB's statistics hold (``resources/silos/_duckdb_stats.py``); a view gets neither."""
        table = self.require_table(table)
        schema, _, name = table.rpartition(".")
        fields = self.cached_schema(table)
        width = sum(arrow_width(f.type) for f in fields)
        con, release = self._connect()
        try:
            found = con.execute(
                "SELECT estimated_size FROM duckdb_tables() WHERE schema_name = ? AND "
                "table_name = ?",
                [schema or "main", name],
            ).fetchall()
            columns = {f.name: ColumnStats() for f in fields}
            if found:  # a table, not a view: its storage has statistics
                columns = table_column_stats(
                    lambda sql: con.execute(sql).fetchall(),
                    table=self.table_expression(table),
                    fields=list(fields),
                )
        except duckdb.Error as err:
            raise self.wrap_error(err, table=table) from None
        finally:
            release()
        estimated = found[0][0] if found else None
        return TableStats(
            rows=estimated,
            bytes=None if estimated is None else estimated * width,
            columns=columns,
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
            con, release = self._connect()
        close = _locked(self._interruptible(con, close=release))
        try:
            with _START_LOCK:
                for name, table in (inputs or {}).items():
                    con.register(name, table)
                reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as err:
            close()
            raise self.wrap_error(err) from None
        return stream(reader.schema, iter(reader), on_error=self.wrap_error, close=close)

    def classify_error(
        self, err: Exception, where: str, *, table: str | None, connecting: bool
    ) -> FedAssetsError:
        text = str(err).splitlines()[0]
        if isinstance(err, duckdb.CatalogException) and "Table" in text:
            return UnknownTableError(where, text, f"use one of: {', '.join(self.tables())}")
        if isinstance(err, duckdb.BinderException) and "column" in text.lower():
            return UnknownColumnError(where, text, "check the column names with schema(table)")
        if isinstance(err, duckdb.IOException):
            return ConfigurationError(where, text, "check the silo's 'path' setting")
        return SiloQueryError(where, f"DuckDB failed: {text}", "check the query")


class _Holds:
    """How many ``hold()`` blocks are open on one silo, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def enter(self) -> None:
        with self._lock:
            self._count += 1

    def leave(self) -> bool:
        """Close one block; True when it was the last."""
        with self._lock:
            self._count -= 1
            return self._count == 0

    def active(self) -> bool:
        with self._lock:
            return self._count > 0


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
