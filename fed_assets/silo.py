"""The silo protocol: what every data silo offers the catalog, the IO managers and the planner.

A silo is a place where data lives (a DuckDB file, a Parquet lake, a PostgreSQL server, ...).
Each kind is one ``ConfigurableResource`` in ``resources/silos/<kind>.py`` deriving from
``SiloResource``; the protocol is small on purpose:

- ``tables()``, ``schema(table)``, ``stats(table)``: what is there, read from metadata;
- ``version(table)``: a cheap change fingerprint, never a scan of rows where metadata can tell;
- ``dialect``, ``capabilities``: how to speak to it and which pushdowns it accepts;
- ``scan(sql)``: run a read-only query inside the silo and stream Arrow back.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import pyarrow as pa
from dagster import Config, ConfigurableResource
from pydantic import Field, PrivateAttr, field_validator
from sqlglot import exp

from fed_assets.errors import (
    FedAssetsError,
    SiloQueryError,
    UnknownColumnError,
    UnknownTableError,
    UnsupportedFunctionError,
)
from fed_assets.filters import check_functions, parse_condition, parse_read_only

# Rows per Arrow batch when a driver lets us choose: large enough to amortise per-batch overhead,
# small enough (~10 MB at 100 bytes a row) that a 10-million-row scan never sits in memory whole.
BATCH_ROWS = 100_000
# Driver messages for a function the engine does not have: SQLite, PostgreSQL (SQLSTATE 42883),
# DuckDB and the emulators built on it (fakesnow, bqemulator), Snowflake ("Unknown function F"),
# BigQuery ("Function not found: f").
_NO_FUNCTION = re.compile(
    r"no such function: ([\w.]+)"
    r"|function ([\w.\"]+)\(.*\) does not exist"
    r"|Function with name \"?([\w.]+)\"? does not exist"
    r"|unknown function ([\w.]+)"
    r"|function not found: ([\w.]+)",
    re.IGNORECASE,
)

# How long require_table() trusts its remembered table list: saves a metadata round trip per
# read in a burst of reads, short enough that a dropped table is noticed within a sensor tick.
TABLES_TTL_S = 30.0

# Seconds one query may run in a silo when neither the silo nor the caller sets a bound: long
# enough for a full scan of a large table, short enough that a hung silo frees the run well
# before a Dagster run's usual hour-long timeout.
DEFAULT_TIMEOUT_S = 300.0

# The bound of the query this thread is running (set by ``time_bound``), for the silos that can
# enforce one server-side (PostgreSQL's statement_timeout).
_bound = threading.local()


@dataclass(frozen=True)
class ColumnStats:
    """What a silo can say cheaply about one column; ``None`` where it cannot."""

    ndv: int | None = None
    min: Any = None
    max: Any = None
    null_count: int | None = None


@dataclass(frozen=True)
class TableStats:
    """Row count, size in bytes and per-column statistics of one table.

    ``exact`` says whether ``rows`` is a count or an estimate from metadata.
    """

    rows: int | None
    bytes: int | None
    columns: dict[str, ColumnStats] = field(default_factory=dict)
    exact: bool = False


@dataclass(frozen=True)
class TableVersion:
    """A change fingerprint of one table.

    Attributes:
        fingerprint: opaque string; equal fingerprints mean unchanged data.
        method: ``"metadata"`` when read from the silo's metadata, ``"content"`` when the silo's
            metadata cannot tell and the fingerprint was computed from the rows (an explicit,
            reported fallback).
        detail: what was read, for humans (shown in Dagster metadata).
    """

    fingerprint: str
    method: Literal["metadata", "content"]
    detail: str


@dataclass(frozen=True)
class Capabilities:
    """Which parts of a query a silo accepts; the planner pushes only these into it."""

    projection: bool = True
    filter: bool = True
    limit: bool = True
    order_by: bool = True
    aggregate: bool = True
    join: bool = True
    temp_tables: bool = False

    def supports(self, ability: str) -> bool:
        """Whether the silo accepts ``ability`` (a field name of this class)."""
        if ability not in self.__dataclass_fields__:
            raise ValueError(f"unknown silo ability {ability!r}")
        return bool(getattr(self, ability))


# What a silo that runs SQL in a read-only session accepts: every pushdown, but no tables shipped
# in (they would have to be created there, which needs writes). Kinds that can say more, say it.
READ_ONLY_SQL = Capabilities(
    projection=True,
    filter=True,
    limit=True,
    order_by=True,
    aggregate=True,
    join=True,
    temp_tables=False,
)


@runtime_checkable
class Silo(Protocol):
    """The protocol every silo kind implements (see module docstring)."""

    name: str
    region: str

    @property
    def dialect(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def tables(self) -> list[str]: ...

    def schema(self, table: str) -> pa.Schema: ...

    def stats(self, table: str) -> TableStats: ...

    def version(self, table: str) -> TableVersion: ...

    def scan(self, sql: str) -> pa.RecordBatchReader: ...


# What a policy's `export` may say: any rows, only aggregates, or nothing.
EXPORT_RULES = ("allowed", "aggregates_only", "none")


class TablePolicy(Config):
    """Rules for one table, overriding its silo's where set."""

    export: str | None = Field(
        default=None,
        description="Overrides the silo's export rule: 'allowed', 'aggregates_only' or 'none'.",
    )

    @field_validator("export")
    @classmethod
    def _known_export(cls, value: str | None) -> str | None:
        if value not in (None, *EXPORT_RULES):
            raise ValueError(f"export must be one of {', '.join(EXPORT_RULES)}, not {value!r}")
        return value

    pii_columns: list[str] = Field(
        default_factory=list, description="Further columns of this table holding personal data."
    )
    min_group_size: int | None = Field(default=None, description="Overrides min_group_size.")
    allowed_regions: list[str] | None = Field(
        default=None, description="Overrides the regions this table's data may move to."
    )


class SiloPolicy(Config):
    """Data-residency and export rules of a silo (enforced by the federated planner)."""

    export: Literal["allowed", "aggregates_only", "none"] = Field(
        default="allowed",
        description="What may leave the silo: any rows, only aggregates over groups of at least "
        "min_group_size rows, or nothing.",
    )
    pii_columns: list[str] = Field(
        default_factory=list,
        description="Columns holding personal data, as 'table.column' or 'column' (any table); "
        "they never leave the silo's region.",
    )
    min_group_size: int = Field(
        default=1, description="Smallest group an exported aggregate may describe."
    )
    allowed_regions: list[str] = Field(
        default_factory=list,
        description="Regions data from this silo may move to; empty means anywhere that its "
        "export rule allows.",
    )
    tables: dict[str, TablePolicy] = Field(
        default_factory=dict, description="Per-table overrides, by table name."
    )

    def for_table(self, table: str) -> EffectivePolicy:
        """The rules that apply to ``table``: this silo's, overridden by the table's own."""
        override = next(
            (p for name, p in self.tables.items() if name.lower() == table.lower()), TablePolicy()
        )
        pii = {
            c.split(".", 1)[-1].lower()
            for c in self.pii_columns
            if "." not in c or c.split(".", 1)[0].lower() == table.lower()
        } | {c.lower() for c in override.pii_columns}
        return EffectivePolicy(
            export=override.export or self.export,
            pii_columns=frozenset(pii),
            min_group_size=override.min_group_size or self.min_group_size,
            allowed_regions=tuple(
                self.allowed_regions
                if override.allowed_regions is None
                else override.allowed_regions
            ),
        )


@dataclass(frozen=True)
class EffectivePolicy:
    """The rules for one table after silo and table settings are combined."""

    export: str
    pii_columns: frozenset[str]
    min_group_size: int
    allowed_regions: tuple[str, ...]


class SiloResource(ConfigurableResource):
    """Base of every silo kind: configuration common to all, and the shared read path.

    Subclasses implement ``dialect``, ``capabilities``, ``tables``, ``schema``, ``stats``,
    ``version`` and ``_scan`` (which receives SQL already checked to be a read-only query).
    """

    name: str = Field(description="Silo name; tables are addressed as '<name>.<table>'.")
    region: str = Field(default="local", description="Region the data lives in, e.g. 'eu'.")
    owner: str | None = Field(default=None, description="Team or person owning the silo.")
    policy: SiloPolicy = Field(
        default_factory=SiloPolicy, description="Residency and export rules."
    )
    egress_usd_per_gb: float = Field(
        default=0.0, description="Price of moving one GB out of the silo's region."
    )
    statement_timeout_s: float | None = Field(
        default=None,
        description="Seconds one query (one fragment) may run in this silo before it is "
        "cancelled there; None: the caller's bound (query()'s timeout_s, default "
        f"{DEFAULT_TIMEOUT_S:.0f} s). The lower of the two applies.",
    )
    allowed_functions: list[str] = Field(
        default_factory=list,
        description="Further functions (by name) that SQL sent to this silo may call, beyond the "
        "dialect's allow-list of side-effect-free functions (fed_assets.filters); list only "
        "functions that read nothing but their arguments.",
    )
    scan_mb_per_s: float | None = Field(
        default=None,
        description="Measured scan throughput (MB/s) for the cost model; None uses the kind's "
        "default.",
    )

    _schema_cache: dict[str, pa.Schema] = PrivateAttr(default_factory=dict)
    # thread id → how to cancel the statement that thread runs in the silo (see ``cancel``).
    _running: dict[int, Callable[[], None]] = PrivateAttr(default_factory=dict)
    _tables_cache: tuple[float, list[str]] | None = PrivateAttr(default=None)

    # ----------------------------------------------------------------- to override
    kind: ClassVar[str] = "silo"
    """Short engine name shown as the asset kind (overridden as a class attribute)."""

    @property
    def dialect(self) -> str:
        raise NotImplementedError

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    def tables(self) -> list[str]:
        raise NotImplementedError

    def schema(self, table: str) -> pa.Schema:
        raise NotImplementedError

    def stats(self, table: str) -> TableStats:
        raise NotImplementedError

    def version(self, table: str) -> TableVersion:
        raise NotImplementedError

    def _scan(self, sql: str) -> pa.RecordBatchReader:
        raise NotImplementedError

    def table_expression(self, table: str) -> exp.Table:
        """How ``table`` (as listed by ``tables()``) is written in this silo's SQL."""
        return exp.to_table(table, dialect=self.dialect)

    # ----------------------------------------------------------------- shared
    def supports(self, ability: str) -> bool:
        """Whether this silo accepts a pushdown ``ability`` (see ``Capabilities``)."""
        return self.capabilities.supports(ability)

    def scan(self, sql: str) -> pa.RecordBatchReader:
        """Run a read-only query in the silo and stream the result as Arrow batches.

        Raises:
            ReadOnlyViolation: ``sql`` is not a single query (DML, DDL, several statements).
            QuerySyntaxError: ``sql`` does not parse in the silo's dialect.
        """
        self.check_query(sql)
        return self._scan(sql)

    def scan_keyed(self, sql: str, keys: Mapping[str, pa.Array]) -> pa.RecordBatchReader:
        """Rows of ``sql`` whose output columns are among the given keys (column → keys, all must
        hold): semi-join filters pushed into the silo. By default the keys travel as ``IN``
        lists in the silo's SQL."""
        from fed_assets.keyed import keyed_sql  # the planner's tree helpers import this module

        self.check_query(sql)
        return self.scan(keyed_sql(sql, self.dialect, keys))

    def scan_with(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.RecordBatchReader:
        """Rows of ``sql`` run with ``tables`` shipped in under their names (the ability
        ``temp_tables``): how a federated query joins small sides inside this silo."""
        raise SiloQueryError(
            f"silo '{self.name}'",
            f"the {self.kind} silo does not accept tables shipped in",
            "ask capabilities.supports('temp_tables') before shipping",
        )

    def execution_seconds(self, sql: str) -> float | None:
        """The silo's own estimate of the seconds it needs to run ``sql`` (nothing runs), or
        None when it cannot tell: how the planner prices work it would push whole."""
        return None

    def time_bound(self) -> float:
        """Seconds the current query in this thread may run: the lower of the silo's
        ``statement_timeout_s`` and the caller's ``time_bound`` (``DEFAULT_TIMEOUT_S`` when neither)."""
        bounds = [
            b for b in (self.statement_timeout_s, getattr(_bound, "seconds", None)) if b is not None
        ]
        return min(bounds) if bounds else DEFAULT_TIMEOUT_S

    def cancel(self, thread_id: int) -> bool:
        """Cancel, in the silo, the statement thread ``thread_id`` is running (a query that gave
        up on it); False when that thread runs none or the silo kind cannot cancel."""
        cancel = self._running.get(thread_id)
        if cancel is None:
            return False
        with contextlib.suppress(Exception):  # the statement may end meanwhile
            cancel()
        return True

    def _cancellable(self, cancel: Callable[[], None]) -> Callable[[], None]:
        """Register ``cancel`` for this thread's running statement; returns the unregister."""
        thread_id = threading.get_ident()
        self._running[thread_id] = cancel
        return lambda: self._running.pop(thread_id, None)

    def hold(self) -> contextlib.AbstractContextManager[None]:
        """A block during which the silo may keep what it opened (a file, a session) for reuse:
        a federated query holds its silos from planning to its last fragment. By default nothing."""
        return contextlib.nullcontext()

    def _interruptible(
        self, con: Any, *, close: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Make ``con`` (a DuckDB or SQLite connection, whose ``interrupt()`` works from any
        thread) what ``cancel`` stops; returns the close for the scan's stream (``close``, by
        default ``con.close``)."""
        unregister = self._cancellable(con.interrupt)
        release = close or con.close

        def close_scan() -> None:
            unregister()
            release()

        return close_scan

    def check_query(self, sql: str) -> exp.Expression:
        """Parse ``sql`` and refuse anything that is not exactly one read-only query calling only
        allowed functions (``fed_assets.filters.check_functions``)."""
        where = f"silo '{self.name}'"
        tree = parse_read_only(sql, dialect=self.dialect, where=where)
        check_functions(tree, dialect=self.dialect, where=where, allowed=self.allowed_functions)
        return tree

    def require_table(self, table: str) -> str:
        """Return ``table`` if the silo has it, else raise ``UnknownTableError`` naming the rest.

        The table list is remembered for ``TABLES_TTL_S``; a name not in it is looked up afresh
        before it is refused, so a table created a moment ago is found.
        """
        cached = self._tables_cache
        if cached is not None and time.monotonic() - cached[0] <= TABLES_TTL_S:
            found = _match_name(table, cached[1])
            if found is not None:
                return found
        names = self.tables()
        self._tables_cache = (time.monotonic(), names)
        found = _match_name(table, names)
        if found is not None:
            return found
        shown = ", ".join(sorted(names)[:20]) or "(none)"
        raise UnknownTableError(
            f"silo '{self.name}', table '{table}'",
            "the silo has no such table",
            f"use one of: {shown}",
        )

    def cached_schema(self, table: str) -> pa.Schema:
        """``schema(table)`` remembered for the life of this resource instance."""
        if table not in self._schema_cache:
            self._schema_cache[table] = self.schema(self.require_table(table))
        return self._schema_cache[table]

    def require_columns(self, table: str, columns: Sequence[str]) -> list[str]:
        """Return the silo's spelling of ``columns``; raise ``UnknownColumnError`` for the rest."""
        names = self.cached_schema(table).names
        lowered = {n.lower(): n for n in names}
        resolved = []
        for column in columns:
            if column in names:
                resolved.append(column)
            elif column.lower() in lowered:
                resolved.append(lowered[column.lower()])
            else:
                raise UnknownColumnError(
                    f"silo '{self.name}', table '{table}', column '{column}'",
                    "the table has no such column",
                    f"use one of: {', '.join(names)}",
                )
        return resolved

    def read_sql(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        where: str | exp.Expression | None = None,
        limit: int | None = None,
    ) -> str:
        """Build the SQL, in this silo's dialect, that reads ``columns`` of ``table`` where ``where``.

        ``where`` is one SQL boolean expression in DuckDB's dialect over the table's columns (text
        or a sqlglot expression); it is parsed and checked by ``fed_assets.filters`` (one
        expression, the table's columns, no subquery, allowed functions) and transpiled.
        """
        table = self.require_table(table)
        select = exp.select(
            *(
                [exp.column(c, quoted=True) for c in self.require_columns(table, columns)]
                if columns
                else [exp.Star()]
            )
        ).from_(self.table_expression(table))
        if where is not None and not (isinstance(where, str) and not where.strip()):
            condition = parse_condition(
                where,
                columns=self.cached_schema(table).names,
                where=f"silo '{self.name}', table '{table}'",
                allowed_functions=self.allowed_functions,
            )
            select = select.where(condition)
        if limit is not None:
            select = select.limit(limit)
        return select.sql(dialect=self.dialect)

    def read(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        where: str | exp.Expression | None = None,
        limit: int | None = None,
    ) -> pa.RecordBatchReader:
        """Stream ``columns`` of ``table`` filtered by ``where``, pushed into the silo."""
        return self.scan(self.read_sql(table, columns=columns, where=where, limit=limit))

    def settings_key(self) -> str:
        """A digest of the silo's settings, policy left out: two resources with the same key read
        the same data the same way (for caches of statistics and of what the silo lacks)."""
        return hashlib.sha256(self.model_dump_json(exclude={"policy"}).encode()).hexdigest()

    def unsupported_function(self, text: str) -> UnsupportedFunctionError | None:
        """The error for a driver message saying the silo has no such function, else None."""
        match = _NO_FUNCTION.search(text)
        if match is None:
            return None
        name = next(g for g in match.groups() if g).strip('"').split(".")[-1].lower()
        return UnsupportedFunctionError(
            f"silo '{self.name}'",
            f"the {self.kind} silo has no function {name}()",
            "a federated query evaluates it in the embedded engine instead; in SQL sent to the "
            "silo directly, use a function the silo has",
            silo=self.name,
            function=name,
        )

    def wrap_error(
        self, err: Exception, *, table: str | None = None, connecting: bool = False
    ) -> FedAssetsError:
        """Turn a driver error into a ``FedAssetsError``.

        Errors that are already ours pass through; a message saying the silo has no such
        function becomes ``UnsupportedFunctionError`` (a federated query then evaluates the
        function in the embedded engine); the kind's ``classify_error`` names the rest, and what
        it does not know is a ``SiloQueryError``.

        Args:
            err: what the driver raised.
            table: the table being read, when known.
            connecting: the error came from opening a session (logging in).
        """
        if isinstance(err, FedAssetsError):
            return err
        missing = self.unsupported_function(str(err))
        if missing is not None:
            return missing
        where = self.error_where(table)
        known = self.classify_error(err, where, table=table, connecting=connecting)
        if known is not None:
            return known
        return SiloQueryError(
            where,
            f"the {self.kind} silo failed: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}",
            "check the query and that the silo is healthy",
        )

    def classify_error(
        self, err: Exception, where: str, *, table: str | None, connecting: bool
    ) -> FedAssetsError | None:
        """The kind's own reading of a driver error (``where`` names silo and table), or None.

        Called by ``wrap_error`` for errors that are neither ours nor a missing function.
        """
        return None

    def error_where(self, table: str | None = None) -> str:
        """Where an error happened, as error messages name it: the silo, and the table if known."""
        return f"silo '{self.name}'" + (f", table '{table}'" if table else "")


@contextlib.contextmanager
def time_bound(seconds: float | None) -> Iterator[None]:
    """Within the block, queries this thread runs in a silo may take at most ``seconds``."""
    previous = getattr(_bound, "seconds", None)
    _bound.seconds = seconds
    try:
        yield
    finally:
        _bound.seconds = previous


def stream(
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    *,
    on_error: Callable[[Exception], FedAssetsError],
    close: Callable[[], None] | None = None,
) -> pa.RecordBatchReader:
    """A ``RecordBatchReader`` over ``batches`` that translates driver errors and closes at end.

    The driver connection stays open until the reader is exhausted or fails; ``close`` runs then.
    """

    closed = False

    def close_once() -> None:
        nonlocal closed
        if not closed and close is not None:
            closed = True
            close()

    def guarded() -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except FedAssetsError:
            raise
        except Exception as err:
            raise on_error(err) from err
        finally:
            close_once()

    reader = pa.RecordBatchReader.from_batches(schema, guarded())
    # A reader dropped before it is exhausted still releases its connection / temporary table.
    weakref.finalize(reader, close_once)
    return reader


def _match_name(name: str, names: list[str]) -> str | None:
    """``name`` as spelt in ``names``: exactly, else ignoring case; None when absent."""
    if name in names:
        return name
    return {n.lower(): n for n in names}.get(name.lower())


def arrow_width(dtype: pa.DataType) -> int:
    """Bytes one value of ``dtype`` takes, for size estimates (variable-width types: a guess)."""
    try:
        return max(dtype.bit_width // 8, 1)
    except ValueError:
        return 16  # strings, binaries and nested values: a typical short value
