"""PostgreSQL silo: pooled read-only ADBC sessions streaming Arrow, metadata from the catalogs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pyarrow as pa
from dagster import InitResourceContext
from pydantic import Field, PrivateAttr
from sqlglot import exp

from fed_assets.errors import (
    FedAssetsError,
    SiloQueryError,
    SiloTimeoutError,
)
from fed_assets.silo import (
    BATCH_ROWS,
    DEFAULT_TIMEOUT_S,
    READ_ONLY_SQL,
    Capabilities,
    ColumnStats,
    SiloResource,
    TableStats,
    TableVersion,
    stream,
)
from resources.silos._duckdb_types import duckdb_types
from resources.silos._pool import ConnectionPool
from resources.silos._postgres_errors import classify, connection_lost
from resources.silos._postgres_types import (
    arrow_schema,
    cast_numeric,
    min_max,
    ndv,
    untyped_numerics,
)

if TYPE_CHECKING:
    pass

T = TypeVar("T")

# Bytes per batch the driver aims for: about BATCH_ROWS rows of a ~80-byte row, so a wide table
# still arrives in bounded pieces (batches over BATCH_ROWS rows are sliced as well).
BATCH_BYTES_HINT = 8 * 1024 * 1024

# Seconds one unit of PostgreSQL's plan cost takes (default cost settings: a unit is about one
# sequential page read). Measured at TPC-H SF1 on the 2-core machine (load 24): 1.6e-5 for
# part-partsupp joins, 1.2e-4 for customer-orders, 1.4e-4 for Q13; the lower end, so that a
# join is kept out of PostgreSQL only when even a cheap unit prices it over moving its tables.
SECONDS_PER_COST_UNIT = 3.0e-5
# Statements whose EXPLAIN cost a silo remembers (a plan asks once per candidate fragment).
EXPLAIN_CACHE_SIZE = 1024

# Relation kinds listed as tables: ordinary, partitioned, view, materialized view, foreign.
_LISTED_RELKINDS = ("r", "p", "v", "m", "f")

_TABLES_SQL = """
SELECT c.relname::text AS name
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1
  AND c.relkind::text = ANY($2)
  AND NOT c.relispartition
  AND has_table_privilege(c.oid, 'SELECT')
ORDER BY 1
"""

_RELATION_SQL = """
SELECT c.oid::bigint AS oid, c.relkind::text AS relkind, c.reltuples::float8 AS reltuples,
       CASE WHEN c.relkind IN ('r', 'p', 'm', 't') THEN pg_total_relation_size(c.oid)::bigint END
           AS bytes,
       s.n_live_tup::bigint AS n_live_tup
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
WHERE n.nspname = $1 AND c.relname = $2
"""

_COLUMN_STATS_SQL = """
SELECT DISTINCT ON (attname)
       attname::text AS name, null_frac::float8 AS null_frac, n_distinct::float8 AS n_distinct,
       histogram_bounds::text::text[] AS bounds, most_common_vals::text::text[] AS common
FROM pg_catalog.pg_stats
WHERE schemaname = $1 AND tablename = $2
ORDER BY attname, inherited DESC
"""

# Every relation whose rows a table's contents come from: itself, what its views' rewrite rules
# read (recursively) and its partitions / inheritance children; with their change counters.
_VERSION_SQL = """
WITH RECURSIVE rels(oid) AS (
    SELECT $1::bigint::oid
    UNION
    SELECT x.oid
    FROM rels r
    CROSS JOIN LATERAL (
        SELECT d.refobjid AS oid
        FROM pg_catalog.pg_rewrite w
        JOIN pg_catalog.pg_depend d
          ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = w.oid
         AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> r.oid
        WHERE w.ev_class = r.oid
        UNION ALL
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = r.oid
    ) x
)
SELECT c.oid::bigint AS oid, c.relname::text AS name, c.relkind::text AS relkind,
       c.relfilenode::bigint AS relfilenode,
       s.n_tup_ins::bigint AS ins, s.n_tup_upd::bigint AS upd, s.n_tup_del::bigint AS del,
       (SELECT md5(string_agg(a.attname || ':' || a.atttypid || ':' || a.atttypmod, ','
                              ORDER BY a.attnum))
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       CASE WHEN c.relkind = 'v' THEN md5(pg_get_viewdef(c.oid)) END AS viewdef,
       (SELECT d.stats_reset::text FROM pg_catalog.pg_stat_database d
        WHERE d.datname = current_database()) AS stats_reset
FROM rels
JOIN pg_catalog.pg_class c ON c.oid = rels.oid
LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
ORDER BY c.oid
"""

# TCP keepalives: probe an idle connection after 10 s, every 5 s, give up after 3 misses, so a
# server that vanished (host down, network cut) is noticed in about 25 s rather than hours.
KEEPALIVES_IDLE_S = 10
KEEPALIVES_INTERVAL_S = 5
KEEPALIVES_COUNT = 3
# Data sent but not acknowledged for this long ends the connection (libpq tcp_user_timeout).
TCP_USER_TIMEOUT_S = 30
# How often a backend checks, during a long query, that its client is still there: a client
# process that died leaves no statement running for longer than this (PostgreSQL 14+).
CLIENT_CHECK_INTERVAL_S = 5

# Run before a session goes back to the pool: whatever a query changed for the session (settings
# through set_config, such as default_transaction_read_only; role; advisory locks; prepared
# statements) returns to what the connection started with, read-only included.
_RESET_SQL = "DISCARD ALL"


class PostgresSilo(SiloResource):
    """A PostgreSQL database schema as a silo, read through ADBC as Arrow.

    Every session is read-only (``default_transaction_read_only=on``) on top of the query check
    that refuses anything but a single query. Sessions are pooled: a scan or catalog query borrows
    an idle connection (see ``resources/silos/_pool.py``), and gives it back reset (``DISCARD
    ALL``) only when it finished cleanly; ``close_pool()`` closes the idle ones, as does the end of
    a Dagster run and the end of the process. Pass the password from the environment::

        PostgresSilo(name="core", host="db.internal", user="reader", database="bank",
                     password=dagster.EnvVar("CORE_PG_PASSWORD"))
    """

    kind: ClassVar[str] = "postgres"

    host: str = Field(description="Server host name or IP address.")
    port: int = Field(default=5432, description="Server TCP port.")
    user: str = Field(description="Role to log in as; read access to the schema is enough.")
    password: str = Field(
        default="",
        repr=False,
        description="Password of the role. Never write it in code: use "
        "dagster.EnvVar('MY_PG_PASSWORD') so it is read from the environment at run time.",
    )
    database: str = Field(description="Database to connect to.")
    schema_: str = Field(
        default="public",
        alias="schema",
        description="Schema whose tables and views this silo exposes.",
    )
    connect_timeout_s: int = Field(
        default=10,
        description="Seconds to wait for a connection before the silo counts as unreachable "
        "(libpq treats values below 2 as 2).",
    )
    sslmode: str = Field(
        default="prefer",
        description="libpq sslmode: disable, allow, prefer, require, verify-ca or verify-full.",
    )

    _pool: ConnectionPool = PrivateAttr(default_factory=ConnectionPool)
    _explained: dict[str, float | None] = PrivateAttr(default_factory=dict)

    # ----------------------------------------------------------------- protocol
    @property
    def dialect(self) -> str:
        return "postgres"

    @property
    def capabilities(self) -> Capabilities:
        # Sessions are read-only, so temporary tables cannot be created for shipped-in data.
        return READ_ONLY_SQL

    def tables(self) -> list[str]:
        rows = self._fetch(_TABLES_SQL, (self.schema_, list(_LISTED_RELKINDS)))
        return [row["name"] for row in rows]

    def schema(self, table: str) -> pa.Schema:
        sql = f"SELECT * FROM {self.table_expression(table).sql(dialect='postgres')} LIMIT 0"
        return arrow_schema(self._query(sql, table=table).schema)

    def stats(self, table: str) -> TableStats:
        relation = self._relation(table)
        rows: int | None = None
        if relation["reltuples"] is not None and relation["reltuples"] >= 0:
            rows = round(relation["reltuples"])
        elif relation["n_live_tup"] is not None:
            rows = relation["n_live_tup"]
        schema = self.schema(table)
        columns: dict[str, ColumnStats] = {}
        for row in self._fetch(_COLUMN_STATS_SQL, (self.schema_, table)):
            if row["name"] not in schema.names:
                continue
            values = (row["bounds"] or []) + (row["common"] or [])
            low, high = min_max(values, schema.field(row["name"]).type)
            columns[row["name"]] = ColumnStats(
                ndv=ndv(row["n_distinct"], rows),
                min=low,
                max=high,
                null_count=None if rows is None else round(row["null_frac"] * rows),
            )
        return TableStats(rows=rows, bytes=relation["bytes"], columns=columns, exact=False)

    def version(self, table: str) -> TableVersion:
        relation = self._relation(table)
        rows = self._fetch(_VERSION_SQL, (relation["oid"],))
        if any(row["relkind"] == "f" for row in rows):
            return self._content_version(table)
        parts = [
            "|".join(
                str(row[key])
                for key in ("oid", "relkind", "relfilenode", "ins", "upd", "del", "columns")
            )
            + "|"
            + str(row["viewdef"])
            for row in rows
        ]
        parts.append(f"stats_reset={rows[0]['stats_reset'] if rows else None}")
        fingerprint = hashlib.sha256("\n".join(parts).encode()).hexdigest()
        counted = [r for r in rows if r["ins"] is not None]
        detail = (
            "pg_class relfilenode and columns, pg_stat_all_tables n_tup_ins/upd/del of "
            + ", ".join(
                f"{r['name']} (ins={r['ins']}, upd={r['upd']}, del={r['del']}, "
                f"relfilenode={r['relfilenode']})"
                for r in counted
            )
            if counted
            else "pg_class definition only (no table underneath)"
        )
        return TableVersion(fingerprint=fingerprint, method="metadata", detail=detail)

    def table_expression(self, table: str) -> exp.Table:
        return exp.Table(
            this=exp.to_identifier(table, quoted=True),
            db=exp.to_identifier(self.schema_, quoted=True),
        )

    def scan_keyed(self, sql: str, keys: Mapping[str, pa.Array]) -> pa.RecordBatchReader:
        """Semi-join keys as one array parameter per column: ``col IN (SELECT
        unnest($1::bigint[]))``. PostgreSQL hashes the unnested keys (a hash semi-join), and no
        key list is rendered into SQL text and parsed again (3,000 keys cost about 70 ms of
        sqlglot as an ``IN`` list). Key types without a matching array type use ``IN`` lists."""
        from fed_assets.keyed import keyed_sql

        if not keys or any(_pg_array_type(v.type) is None for v in keys.values()):
            return super().scan_keyed(sql, keys)
        self.check_query(sql)
        conditions, columns = {}, []
        for i, (column, values) in enumerate(keys.items(), start=1):
            array = exp.cast(exp.Parameter(this=exp.Literal.number(i)), _pg_array_type(values.type))
            unnest = exp.select(exp.func("unnest", array))
            conditions[column] = lambda target, unnest=unnest: target.isin(query=unnest.copy())
            columns.append(pa.array([values.to_pylist()], pa.list_(values.type)))
        params = pa.record_batch(columns, names=[f"p{i}" for i in range(len(columns))])
        return self._scan(keyed_sql(sql, self.dialect, conditions), params=params)

    def _scan(self, sql: str, params: pa.RecordBatch | None = None) -> pa.RecordBatchReader:
        import adbc_driver_postgresql

        bound = self.time_bound()
        running: list[Any] = []  # the cursor, once there is one: what ``cancel`` interrupts
        cancelled = threading.Event()  # a cancel that came before the statement started

        def cancel() -> None:
            cancelled.set()
            if running:
                running[0].adbc_cancel()

        unregister = self._cancellable(cancel)

        def start(conn: Any) -> tuple[Any, pa.RecordBatchReader, pa.Schema]:
            cur = conn.cursor()
            running[:] = [cur]
            try:
                if cancelled.is_set():
                    raise SiloTimeoutError(
                        f"silo '{self.name}'",
                        "the query gave up on this statement before it started",
                        "see the error the query raised first",
                    )
                # The session starts with the silo's bound; a query's own is set per statement.
                if _ms(bound) != _ms(self.statement_timeout_s or DEFAULT_TIMEOUT_S):
                    cur.execute(f"SELECT set_config('statement_timeout', '{_ms(bound)}', false)")
                    cur.fetchall()
                cur.adbc_statement.set_options(
                    **{
                        adbc_driver_postgresql.StatementOptions.BATCH_SIZE_HINT_BYTES.value: str(
                            BATCH_BYTES_HINT
                        )
                    }
                )
                cur.execute(sql, params)
                reader = cur.fetch_record_batch()
                return cur, reader, arrow_schema(reader.schema)
            except BaseException:
                _close(cur, None)
                raise

        try:
            conn, (cur, reader, schema) = self._borrow(start)
        except BaseException:
            unregister()
            raise
        loose = untyped_numerics(reader.schema)
        if loose:
            schema = self._typed_numerics(sql, schema, loose)
        drained = False

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal drained
            for batch in reader:
                converted = self._convert(batch, schema)
                for offset in range(0, max(converted.num_rows, 1), BATCH_ROWS):
                    yield converted.slice(offset, BATCH_ROWS)
            drained = True

        def close() -> None:
            # Only a result read to its end leaves the session idle; after an error, or a reader
            # dropped or closed halfway, the server may still be sending rows: close the session.
            unregister()
            _close(cur, None)
            if drained:
                self._give_back(conn)
            else:
                _close(None, conn)

        return stream(schema, batches(), on_error=self.wrap_error, close=close)

    def execution_seconds(self, sql: str) -> float | None:
        """PostgreSQL's plan cost for ``sql`` (``EXPLAIN``, no ANALYZE: nothing runs), as
        seconds at ``SECONDS_PER_COST_UNIT``; remembered per statement (EXPLAIN only plans: a round trip of
        milliseconds, bounded by the session's statement_timeout); None when EXPLAIN fails."""
        cache = self._explained
        if sql in cache:
            return cache[sql]
        try:
            self.check_query(sql)
            plan = json.loads(self._explain(sql))[0]["Plan"]
            seconds = float(plan["Total Cost"]) * SECONDS_PER_COST_UNIT
        except (FedAssetsError, KeyError, ValueError, IndexError, TypeError):
            seconds = None
        if len(cache) >= EXPLAIN_CACHE_SIZE:
            cache.clear()
        cache[sql] = seconds
        return seconds

    def _explain(self, sql: str) -> str:
        """``EXPLAIN (FORMAT JSON)`` of ``sql`` as text: outside COPY, which the driver wraps
        result sets in by default and which cannot carry an EXPLAIN."""
        import adbc_driver_postgresql

        def run(conn: Any) -> str:
            cur = conn.cursor()
            try:
                cur.adbc_statement.set_options(
                    **{adbc_driver_postgresql.StatementOptions.USE_COPY.value: "false"}
                )
                cur.execute(f"EXPLAIN (FORMAT JSON) {sql}")
                return str(cur.fetchall()[0][0])
            finally:
                cur.close()

        conn, text = self._borrow(run)
        self._give_back(conn)
        return text

    # ----------------------------------------------------------------- pool
    def close_pool(self) -> None:
        """Close the idle pooled connections now (those still in use close or pool when done)."""
        self._pool.clear()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Dagster calls this when a run or step that used the silo ends: idle sessions close."""
        self.close_pool()

    # ----------------------------------------------------------------- errors
    def classify_error(
        self, err: Exception, where: str, *, table: str | None, connecting: bool
    ) -> FedAssetsError:
        return classify(self, err, where, table=table, connecting=connecting)

    # ----------------------------------------------------------------- helpers
    def conninfo(self) -> str:
        """The libpq connection string; read-only sessions. Holds the password: never log it."""
        settings = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "password": self.password,
            "dbname": self.database,
            "connect_timeout": str(self.connect_timeout_s),
            "sslmode": self.sslmode,
            "application_name": "fed-assets",
            "keepalives": "1",
            "keepalives_idle": str(KEEPALIVES_IDLE_S),
            "keepalives_interval": str(KEEPALIVES_INTERVAL_S),
            "keepalives_count": str(KEEPALIVES_COUNT),
            "tcp_user_timeout": str(TCP_USER_TIMEOUT_S * 1000),
            "options": "-c default_transaction_read_only=on"
            f" -c statement_timeout={_ms(self.statement_timeout_s or DEFAULT_TIMEOUT_S)}"
            f" -c client_connection_check_interval={CLIENT_CHECK_INTERVAL_S * 1000}",
        }
        return " ".join(f"{k}={_conninfo_value(v)}" for k, v in settings.items() if v != "")

    def _connect(self) -> Any:
        # The driver, imported by the steps that read PostgreSQL (not by every code load).
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as adbc_pg

        try:
            return adbc_pg.connect(self.conninfo(), autocommit=True)
        except adbc_driver_manager.Error as err:
            # from None: a driver's connect error could echo the connection string.
            raise self.wrap_error(err) from None

    def _borrow(self, work: Callable[[Any], T], *, table: str | None = None) -> tuple[Any, T]:
        """Run ``work(connection)`` on a pooled (else new) connection; return both.

        The caller owns the connection afterwards and hands it to ``_give_back`` once it is idle.
        After an error the connection is closed, never reused, and the error raised as a
        ``FedAssetsError``; except that when a reused connection turns out to have been closed by
        the server, ``work`` runs once more on a new connection (queries only read, so running
        one again is safe), and the other idle connections, likely dead too, are closed.
        """
        import adbc_driver_manager

        key = self._pool_key()
        conn = self._pool.take(key)
        reused = conn is not None
        if conn is None:
            conn = self._connect()
        while True:
            try:
                return conn, work(conn)
            except BaseException as err:
                _close(None, conn)
                if not isinstance(err, adbc_driver_manager.Error):
                    raise
                if not (reused and connection_lost(err)):
                    raise self.wrap_error(err, table=table) from err
            self._pool.clear()
            conn, reused = self._connect(), False

    def _give_back(self, conn: Any) -> None:
        """Reset an idle session and return it to the pool; close it if the reset fails."""
        try:
            cur = conn.cursor()
            try:
                cur.adbc_statement.set_sql_query(_RESET_SQL)
                cur.adbc_statement.execute_update()
            finally:
                cur.close()
        except Exception:  # a session that cannot be reset is not reused
            _close(None, conn)
            return
        self._pool.give_back(self._pool_key(), conn)

    def _pool_key(self) -> bytes:
        """Pooled sessions are filed by a digest of the settings that opened them."""
        return hashlib.sha256(self.conninfo().encode()).digest()

    def _query(self, sql: str, params: Sequence[Any] = (), *, table: str | None = None) -> pa.Table:
        """Run ``sql`` with ``$n`` parameters on a pooled session; the whole result as a table."""

        def run(conn: Any) -> pa.Table:
            cur = conn.cursor()
            try:
                cur.execute(sql, tuple(params) if params else None)
                return cur.fetch_arrow_table()
            finally:
                cur.close()

        conn, result = self._borrow(run, table=table)
        self._give_back(conn)
        return result

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a catalog query with ``$n`` parameters and return its rows as dicts."""
        return self._query(sql, params).to_pylist()

    def _relation(self, table: str) -> dict[str, Any]:
        rows = self._fetch(_RELATION_SQL, (self.schema_, table))
        if not rows:
            table = self.require_table(table)  # raises UnknownTableError naming the tables
            rows = self._fetch(_RELATION_SQL, (self.schema_, table))
        return rows[0]

    def _content_version(self, table: str) -> TableVersion:
        """Fingerprint of the rows, for foreign tables whose metadata cannot tell changes."""
        name = self.table_expression(table).sql(dialect="postgres")
        sql = (
            "SELECT count(*)::bigint AS n, "
            f"md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))) AS h FROM {name} t"
        )
        (row,) = self._fetch(sql)
        return TableVersion(
            fingerprint=f"{row['n']}:{row['h']}",
            method="content",
            detail=f"md5 of all {row['n']} rows: a foreign table has no change counters",
        )

    def _typed_numerics(self, sql: str, schema: pa.Schema, loose: list[int]) -> pa.Schema:
        """``schema`` with the precision-less numerics at ``loose`` typed as DuckDB types the
        same query over the tables' schemas (``SUM`` of a ``numeric(15,2)`` as
        ``decimal128(38, 2)``), where DuckDB gives a decimal."""

        def schema_of(table: str) -> pa.Schema | None:
            try:
                return self.cached_schema(table)
            except FedAssetsError:
                return None

        types = duckdb_types(sql, self.dialect, schema_of)
        if types is None or len(types) != len(schema):
            return schema
        fields = list(schema)
        for i in loose:
            if pa.types.is_decimal(types[i]):
                fields[i] = pa.field(fields[i].name, types[i], nullable=fields[i].nullable)
        return pa.schema(fields)

    def _convert(self, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        """Cast driver-specific columns (opaque ``numeric``) to the types of ``schema``."""
        columns = []
        for column, target in zip(batch.columns, schema, strict=True):
            if column.type == target.type:
                columns.append(column)
                continue
            storage = column.storage if isinstance(column, pa.ExtensionArray) else column
            try:
                columns.append(cast_numeric(storage, target.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise SiloQueryError(
                    f"silo '{self.name}', column '{target.name}'",
                    f"a value does not fit {target.type} ({err}); PostgreSQL numeric columns "
                    "may hold NaN or Infinity, which decimals cannot",
                    f'cast the column in the query, e.g. "{target.name}"::float8',
                ) from None
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    def _scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text


def _ms(seconds: float) -> int:
    """Milliseconds for a PostgreSQL setting; at least 1 (0 would mean no bound)."""
    return max(1, round(seconds * 1000))


def _conninfo_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _close(cur: Any, conn: Any) -> None:
    for handle in (cur, conn):
        if handle is None:
            continue
        with contextlib.suppress(Exception):  # closing after a failure must not hide it
            handle.close()


# Arrow key types sent as one PostgreSQL array parameter, and the array type they are cast to.
_ARRAY_TYPES = {
    pa.int64(): "BIGINT[]",
    pa.int32(): "INT[]",
    pa.int16(): "SMALLINT[]",
    pa.string(): "TEXT[]",
    pa.large_string(): "TEXT[]",
}


def _pg_array_type(kind: pa.DataType) -> str | None:
    """The PostgreSQL array type semi-join keys of ``kind`` travel as (None: use an IN list)."""
    return _ARRAY_TYPES.get(kind)
