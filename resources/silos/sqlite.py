"""A SQLite database file as a silo, opened read-only."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import struct
from collections.abc import Iterator, Mapping
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from pydantic import Field
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from fed_assets.errors import (
    CorruptDataError,
    FedAssetsError,
    SiloQueryError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownTableError,
)
from fed_assets.silo import (
    BATCH_ROWS,
    READ_ONLY_SQL,
    Capabilities,
    ColumnStats,
    SiloResource,
    TableStats,
    TableVersion,
    arrow_width,
    stream,
)
from fed_assets.types import arrow_type
from resources.silos._duckdb_types import duckdb_types

# SQLite's file change counter: a big-endian u32 at byte 24 of the header, bumped on every commit
# in rollback-journal mode. In WAL mode commits bump iChange, a u32 at byte 8 of the -shm file.
_CHANGE_COUNTER = 24
_SHM_ICHANGE = 8
# Declared names that say a narrower integer than SQLite's 64-bit storage; INTEGER and every
# other name with INT affinity read as 64-bit.
_NARROW_INTS = {
    "TINYINT": pa.int8(),
    "INT2": pa.int16(),
    "SMALLINT": pa.int16(),
    "INT": pa.int32(),
    "INT4": pa.int32(),
    "MEDIUMINT": pa.int32(),
}


class SQLiteSilo(SiloResource):
    """Tables and views of one SQLite file."""

    kind: ClassVar[str] = "sqlite"

    path: str = Field(description="Path of the SQLite database file.")

    @property
    def dialect(self) -> str:
        return "sqlite"

    @property
    def capabilities(self) -> Capabilities:
        # The file is opened read-only, so shipped-in rows have nowhere to go.
        return READ_ONLY_SQL

    def _connect(self) -> sqlite3.Connection:
        if not os.path.exists(self.path):
            raise SiloUnreachableError(
                f"silo '{self.name}'",
                f"the SQLite file {self.path} does not exist",
                "check the silo's 'path' setting (for the demo, run `fed-assets demo seed`)",
            )
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        con.execute("PRAGMA query_only = ON")
        return con

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        con = self._connect()
        try:
            return con.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise self.wrap_error(err) from None
        finally:
            con.close()

    def tables(self) -> list[str]:
        rows = self._query(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        return [r[0] for r in rows]

    def _declared(self, table: str) -> dict[str, str]:
        """Column name → declared SQL type, in table order."""
        rows = self._query("SELECT name, type FROM pragma_table_info(?)", (table,))
        return {name: (decl or "TEXT") for name, decl in rows}

    def schema(self, table: str) -> pa.Schema:
        table = self.require_table(table)
        return pa.schema(
            [pa.field(c, _declared_arrow(t)) for c, t in self._declared(table).items()]
        )

    def stats(self, table: str) -> TableStats:
        table = self.require_table(table)
        rows: int | None = None
        exact = False
        stat = (
            self._query(
                "SELECT stat FROM sqlite_master m JOIN sqlite_stat1 s ON s.tbl = m.name "
                "WHERE m.name = ? LIMIT 1",
                (table,),
            )
            if self._has_stat1()
            else []
        )
        if stat:
            rows = int(str(stat[0][0]).split()[0])
        else:
            try:  # max(rowid) is a B-tree descent, not a scan
                (rows,) = self._query(f'SELECT max(rowid) FROM "{table}"')[0]
                rows = rows or 0
            except FedAssetsError:
                rows = None
        width = sum(arrow_width(f.type) for f in self.cached_schema(table))
        return TableStats(
            rows=rows,
            bytes=None if rows is None else rows * width,
            columns={f.name: ColumnStats() for f in self.cached_schema(table)},
            exact=exact,
        )

    def _has_stat1(self) -> bool:
        return bool(self._query("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"))

    def version(self, table: str) -> TableVersion:
        self.require_table(table)
        with open(self.path, "rb") as f:
            f.seek(_CHANGE_COUNTER)
            (counter,) = struct.unpack(">I", f.read(4))
        parts = [f"counter={counter}"]
        shm = self.path + "-shm"
        if os.path.exists(shm):
            with open(shm, "rb") as f:
                f.seek(_SHM_ICHANGE)
                raw = f.read(4)
            parts.append(f"ichange={struct.unpack('<I', raw)[0] if len(raw) == 4 else 'na'}")
        return TableVersion(
            fingerprint=hashlib.sha256("|".join(parts).encode()).hexdigest()[:16],
            method="metadata",
            detail="SQLite header change counter (+ WAL iChange): file-level, so a change to any "
            "table of this file changes every table's version",
        )

    def scan_keyed(self, sql: str, keys: Mapping[str, pa.Array]) -> pa.RecordBatchReader:
        """Semi-join keys as one JSON array parameter per column: ``col IN (SELECT value FROM
        json_each(:k0))``, SQLite's nearest idiom to an array parameter (no key list rendered
        into SQL text, parsed by sqlglot and SQLite again). Keys other than integers and text
        use ``IN`` lists."""
        from fed_assets.keyed import keyed_sql

        if not keys or not all(_json_keys(v.type) for v in keys.values()):
            return super().scan_keyed(sql, keys)
        self.check_query(sql)
        conditions, params = {}, {}
        for i, (column, values) in enumerate(keys.items()):
            name = f"k{i}"
            each = exp.select("value").from_(exp.func("json_each", exp.Placeholder(this=name)))
            conditions[column] = lambda target, each=each: target.isin(query=each.copy())
            params[name] = json.dumps(values.to_pylist())
        return self._scan(keyed_sql(sql, self.dialect, conditions), params=params)

    def _scan(self, sql: str, params: dict | None = None) -> pa.RecordBatchReader:
        types = self._result_types(sql)
        con = self._connect()
        close = self._interruptible(con)
        try:
            cursor = con.execute(sql, params or {})
        except sqlite3.Error as err:
            close()
            raise self.wrap_error(err) from None
        names = [d[0] for d in cursor.description]
        if types is None or len(types) != len(names):
            types = [None] * len(names)
        first = cursor.fetchmany(BATCH_ROWS)
        if any(t is None for t in types):  # infer what the SQL did not tell from the values
            types = [t or pa.array([r[i] for r in first]).type for i, t in enumerate(types)]
            types = [pa.string() if pa.types.is_null(t) else t for t in types]
        schema = pa.schema([pa.field(n, t) for n, t in zip(names, types, strict=True)])

        def batches() -> Iterator[pa.RecordBatch]:
            rows = first
            while rows:
                yield _to_batch(rows, schema)
                rows = cursor.fetchmany(BATCH_ROWS)

        return stream(schema, batches(), on_error=self.wrap_error, close=close)

    def _result_types(self, sql: str) -> list[pa.DataType | None] | None:
        """Arrow types of the query's output columns: those DuckDB gives the query over the
        declared schemas (so a decimal sum stays a decimal), else sqlglot's from the declared
        types."""
        names = set(self.tables())
        typed_by_duckdb = duckdb_types(
            sql, "sqlite", lambda t: self.cached_schema(t) if t in names else None
        )
        if typed_by_duckdb is not None:
            return list(typed_by_duckdb)
        try:
            tree = sqlglot.parse_one(sql, read="sqlite")
            schema = {
                t.name: self._declared(t.name)
                for t in tree.find_all(exp.Table)
                if t.name in self.tables()
            }
            typed = annotate_types(qualify(tree, schema=schema, dialect="sqlite"), schema=schema)
        except (sqlglot.errors.SqlglotError, FedAssetsError):
            return None
        out: list[pa.DataType | None] = []
        for select in typed.selects:
            if isinstance(select, exp.Star) or select.type is None:
                return None
            if select.type.this == exp.DataType.Type.UNKNOWN:
                out.append(None)
            else:
                out.append(_sqlite_arrow(select.type))
        return out

    def classify_error(
        self, err: Exception, where: str, *, table: str | None, connecting: bool
    ) -> FedAssetsError:
        text = str(err).splitlines()[0]
        if "no such table" in text:
            return UnknownTableError(where, text, f"use one of: {', '.join(self.tables())}")
        if "no such column" in text:
            return UnknownColumnError(where, text, "check the column names with schema(table)")
        if isinstance(err, sqlite3.DatabaseError) and "not a database" in text:
            return CorruptDataError(where, f"{self.path}: {text}", "restore the file from backup")
        return SiloQueryError(where, f"SQLite failed: {text}", "check the query")


def _sqlite_arrow(sql_type: str | exp.DataType) -> pa.DataType:
    """SQLite types by affinity: every integer is 64-bit, every float a double."""
    dtype = arrow_type(sql_type, dialect="sqlite")
    if pa.types.is_integer(dtype):
        return pa.int64()
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return pa.float64()
    return dtype


def _declared_arrow(declared: str) -> pa.DataType:
    """A column's Arrow type from its declared type: decimals and narrow integers as declared
    (what the same table gives in DuckDB or Parquet), the rest by affinity."""
    narrow = _NARROW_INTS.get(declared.strip().upper())
    if narrow is not None:
        return narrow
    dtype = arrow_type(declared, dialect="sqlite")
    return dtype if pa.types.is_decimal(dtype) else _sqlite_arrow(declared)


def _to_batch(rows: list[tuple], schema: pa.Schema) -> pa.RecordBatch:
    """Rows from sqlite3 → an Arrow batch of ``schema`` (text timestamps, 0/1 booleans and
    decimals stored as REAL cast)."""
    columns = []
    for i, field in enumerate(schema):
        values = [r[i] for r in rows]
        try:
            if pa.types.is_decimal(field.type):  # SQLite stores them as REAL (or INTEGER)
                columns.append(pc.cast(pa.array(values, pa.float64()), field.type))
                continue
            columns.append(pa.array(values, field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            try:
                columns.append(pc.cast(pa.array(values), field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
                raise SiloQueryError(
                    f"column '{field.name}'",
                    f"a value does not fit the declared type's {field.type} ({err})",
                    "declare the column with a wider type (INTEGER, REAL, TEXT) or CAST it in "
                    "the query",
                ) from None
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _json_keys(kind: pa.DataType) -> bool:
    """Whether keys of ``kind`` compare equal to their JSON form in SQLite (integers, text)."""
    return pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
