"""Snowflake silo: dagster-snowflake connections, Arrow results, INFORMATION_SCHEMA metadata."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from dagster import EnvVar
from pydantic import Field
from sqlglot import exp

from fed_assets.errors import (
    ConfigurationError,
    FedAssetsError,
    QuerySyntaxError,
    SiloAuthError,
    SiloQueryError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownTableError,
)
from fed_assets.silo import (
    BATCH_ROWS,
    DEFAULT_TIMEOUT_S,
    Capabilities,
    ColumnStats,
    SiloResource,
    TableStats,
    TableVersion,
    arrow_width,
    stream,
)
from resources.silos._snowflake_types import arrow_type, result_schema

if TYPE_CHECKING:
    from dagster_snowflake import SnowflakeResource

# 0 skips the connector's probe of cloud metadata endpoints at login (see snowflake_resource).
PLATFORM_DETECTION_TIMEOUT_S = 0.0

_TABLES_SQL = (
    "SELECT TABLE_NAME, TABLE_TYPE FROM INFORMATION_SCHEMA.TABLES "
    "WHERE TABLE_SCHEMA = CURRENT_SCHEMA() ORDER BY TABLE_NAME"
)
_TABLE_SQL = (
    "SELECT TABLE_NAME, TABLE_TYPE, ROW_COUNT, BYTES, LAST_ALTERED FROM INFORMATION_SCHEMA.TABLES "
    "WHERE TABLE_SCHEMA = CURRENT_SCHEMA() AND TABLE_NAME = %s"
)
# SELECT *: DATETIME_PRECISION is read when the server has it (Snowflake does, fakesnow does not).
_COLUMNS_SQL = (
    "SELECT * FROM INFORMATION_SCHEMA.COLUMNS "
    "WHERE TABLE_SCHEMA = CURRENT_SCHEMA() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION"
)

# LAST_ALTERED at or before this instant is not a real change time: fakesnow freezes it at
# 1970-01-01, and Snowflake tables are never altered before the service existed.
_METADATA_EPOCH = dt.datetime(1971, 1, 1, tzinfo=dt.UTC)

# Table types whose LAST_ALTERED moves with every DML: views, external tables and materialized
# views change when what they read changes, which their own LAST_ALTERED does not follow.
_METADATA_TABLE_TYPES = frozenset({"BASE TABLE", "TEMPORARY TABLE", "TRANSIENT TABLE"})

# Connector error numbers (snowflake.connector.errorcode and Snowflake's server codes).
_UNREACHABLE_ERRNOS = frozenset(
    {
        250001,  # could not connect to Snowflake backend
        250002,  # connection is closed
        250003,  # failed to get a response / TLS failure
        250005,  # failed to connect to the server
        251009,  # no host name found
        251011,  # connection timed out
    }
)
_AUTH_ERRNOS = frozenset(
    {
        390100,  # incorrect username or password
        390101,  # user temporarily locked
        390102,  # user disabled
        390144,  # JWT token invalid (key-pair authentication)
        390318,  # OAuth access token expired
        251005,  # user is empty
        251006,  # password is empty
        251008,  # private key invalid
    }
)


# HTTP answers that mean the service, not the query, is unavailable.
def _unreachable_classes() -> tuple[type[BaseException], ...]:
    # The connector, imported by the steps that read Snowflake (not by every code load).
    from snowflake.connector import errors as sf_errors

    return (
        sf_errors.ServiceUnavailableError,
        sf_errors.GatewayTimeoutError,
        sf_errors.BadGatewayError,
        sf_errors.RequestTimeoutError,
        ConnectionError,
        TimeoutError,
    )


_ROLE_ERRNO = 390189  # role in the connect string is not granted to the user
_NO_WAREHOUSE_ERRNO = 606  # no active warehouse selected in the current session
_NO_DATABASE_ERRNOS = frozenset({90105, 90106})  # session has no current database / schema
_OBJECT_MISSING_ERRNO = 2003  # object does not exist or not authorized
_INVALID_IDENTIFIER_ERRNO = 904  # invalid identifier (an unknown column)
_SYNTAX_ERRNO = 1003  # SQL compilation error: syntax error
_NO_PRIVILEGE_ERRNOS = frozenset({3001, 3540})  # insufficient privileges


class SnowflakeSilo(SiloResource):
    """One Snowflake schema as a silo, read through dagster-snowflake's ``SnowflakeResource``.

    Tables are named as Snowflake stores them (``PEOPLE`` for a table created unquoted,
    ``people`` for one created as ``"people"``); lookups match case-insensitively, and the SQL
    the silo builds quotes the stored spelling. Result columns keep Snowflake's case too.
    Give the silo a role that can only read: the silo refuses anything but a single query, but
    Snowflake has no read-only session to enforce it a second time. Secrets come from the
    environment::

        SnowflakeSilo(name="loans", account="myorg-myaccount", user="FED_READER",
                      password=dagster.EnvVar("SNOWFLAKE_PASSWORD"),
                      database="LOANS", snowflake_schema="PUBLIC", warehouse="XS_WH")
    """

    kind: ClassVar[str] = "snowflake"

    account: str = Field(description="Account identifier, e.g. 'myorg-myaccount'.")
    user: str = Field(description="User to log in as; a role with SELECT on the schema is enough.")
    password: str | None = Field(
        default=None,
        repr=False,
        description="Password of the user. Never write it in code: use "
        "dagster.EnvVar('SNOWFLAKE_PASSWORD') so it is read from the environment at run time.",
    )
    private_key: str | None = Field(
        default=None,
        repr=False,
        description="PEM private key for key-pair authentication, instead of a password; pass "
        "it through dagster.EnvVar.",
    )
    private_key_path: str | None = Field(
        default=None, description="Path of a PEM private key file, instead of a password."
    )
    private_key_password: str | None = Field(
        default=None,
        repr=False,
        description="Passphrase of the private key, if it has one (through dagster.EnvVar).",
    )
    authenticator: str | None = Field(
        default=None,
        description="Connector authenticator ('externalbrowser', 'oauth', ...); None for "
        "password or key-pair login.",
    )
    database: str = Field(description="Database holding the silo's schema.")
    snowflake_schema: str = Field(
        default="PUBLIC",
        description="Snowflake schema whose tables and views this silo exposes (named "
        "snowflake_schema because schema() is a method of every silo).",
    )
    warehouse: str | None = Field(
        default=None, description="Warehouse that runs the queries; None uses the user's default."
    )
    role: str | None = Field(default=None, description="Role to use; None uses the user's default.")
    host: str | None = Field(
        default=None,
        description="Host to connect to instead of <account>.snowflakecomputing.com (an "
        "emulator such as fakesnow, or a private link).",
    )
    port: int | None = Field(default=None, description="Port to connect to; None for 443.")
    protocol: str | None = Field(
        default=None, description="'https' (the default) or 'http' for a local emulator."
    )
    login_timeout_s: int = Field(
        default=30,
        description="Seconds the connector keeps trying to log in before the silo counts as "
        "unreachable.",
    )
    network_timeout_s: int | None = Field(
        default=None,
        description="Seconds the connector keeps retrying one request (HTTP 5xx, dropped "
        "connections) before failing; None retries as long as the connector's default allows.",
    )
    connection_args: dict[str, Any] = Field(
        default_factory=dict,
        description="More keyword arguments for snowflake.connector.connect (through "
        "SnowflakeResource.additional_snowflake_connection_args).",
    )

    # ----------------------------------------------------------------- protocol
    @property
    def dialect(self) -> str:
        return "snowflake"

    @property
    def capabilities(self) -> Capabilities:
        # The silo only reads: shipping rows in would need write access to a scratch schema.
        return Capabilities(temp_tables=False)

    def tables(self) -> list[str]:
        return [row["TABLE_NAME"] for row in self._fetch(_TABLES_SQL)]

    def schema(self, table: str) -> pa.Schema:
        rows = self._fetch(_COLUMNS_SQL, (table,), table=table)
        if not rows:
            table = self.require_table(table)
            rows = self._fetch(_COLUMNS_SQL, (table,), table=table)
        return pa.schema(
            [
                pa.field(
                    row["COLUMN_NAME"],
                    arrow_type(
                        row["DATA_TYPE"],
                        precision=row.get("NUMERIC_PRECISION"),
                        scale=row.get("NUMERIC_SCALE"),
                        time_precision=row.get("DATETIME_PRECISION"),
                    ),
                )
                for row in rows
            ]
        )

    def stats(self, table: str) -> TableStats:
        row = self._table_row(table)
        rows = row["ROW_COUNT"]
        size = row["BYTES"]
        columns = self.cached_schema(row["TABLE_NAME"])
        if not size and rows:
            # BYTES is 0 where the server does not track it (fakesnow): estimate from the types.
            size = rows * sum(arrow_width(f.type) for f in columns)
        return TableStats(
            rows=rows,
            bytes=size,
            columns={f.name: ColumnStats() for f in columns},
            exact=False,
        )

    def version(self, table: str) -> TableVersion:
        row = self._table_row(table)
        last_altered = row["LAST_ALTERED"]
        unusable = _metadata_unusable(row["TABLE_TYPE"], last_altered)
        if unusable is None:
            parts = f"{last_altered.isoformat()}|{row['ROW_COUNT']}|{row['BYTES']}"
            return TableVersion(
                fingerprint=hashlib.sha256(parts.encode()).hexdigest()[:16],
                method="metadata",
                detail=f"INFORMATION_SCHEMA.TABLES LAST_ALTERED={last_altered.isoformat()}, "
                f"ROW_COUNT={row['ROW_COUNT']}, BYTES={row['BYTES']}",
            )
        return self._content_version(row["TABLE_NAME"], unusable)

    def table_expression(self, table: str) -> exp.Table:
        # Quoted: names are the stored spelling, and an unquoted "people" would mean PEOPLE.
        return exp.table_(table, quoted=True)

    def _scan(self, sql: str) -> pa.RecordBatchReader:
        conn, close = self._open()
        try:
            cur = conn.cursor()
            cur.execute(sql)
            schema = result_schema(cur.description)
            chunks = cur.fetch_arrow_batches()
        except Exception as err:
            close()
            raise self.wrap_error(err) from None
        return stream(schema, self._batches(chunks, schema), on_error=self.wrap_error, close=close)

    # ----------------------------------------------------------------- connection
    @property
    def snowflake_resource(self) -> SnowflakeResource:
        """The dagster-snowflake resource this silo connects through (built from its fields)."""
        from dagster_snowflake import SnowflakeResource  # imported by the steps that read it

        extra: dict[str, Any] = {
            key: value
            for key, value in (
                ("host", self.host),
                ("port", self.port),
                ("protocol", self.protocol),
            )
            if value is not None
        }
        # Every call logs in; the connector's cloud-platform probe (login telemetry) can stall a
        # login for seconds where metadata hosts do not resolve. connection_args may turn it on.
        extra["platform_detection_timeout_seconds"] = PLATFORM_DETECTION_TIMEOUT_S
        extra.update(self.connection_args)
        # The server stops a statement past the silo's bound (the executor also cancels one it
        # gave up on sooner): a hung warehouse query never outlives the run that started it.
        session = {
            "QUERY_TAG": f"fed-assets silo {self.name}",
            "STATEMENT_TIMEOUT_IN_SECONDS": math.ceil(
                self.statement_timeout_s or DEFAULT_TIMEOUT_S
            ),
        }
        session.update(extra.get("session_parameters") or {})
        extra["session_parameters"] = session
        try:
            return SnowflakeResource(
                account=self.account,
                user=self.user,
                password=self.password,
                private_key=self.private_key,
                private_key_path=self.private_key_path,
                private_key_password=self.private_key_password,
                authenticator=self.authenticator,
                database=self.database,
                warehouse=self.warehouse,
                role=self.role,
                login_timeout=self.login_timeout_s,
                network_timeout=self.network_timeout_s,
                # The silo's own catalog queries use %s parameters.
                paramstyle="pyformat",
                additional_snowflake_connection_args=extra,
                # The field is schema_, settable only by its alias (schema_= is ignored).
                **{"schema": self.snowflake_schema},
            )
        except Exception as err:  # dagster's CheckError or pydantic's ValidationError
            raise ConfigurationError(
                f"silo '{self.name}'",
                f"the Snowflake settings are invalid: {self._scrub(_first_line(err))}",
                "set exactly one of password, private_key or private_key_path (or an "
                "authenticator), each through dagster.EnvVar",
            ) from None

    def _open(self) -> tuple[Any, Callable[[], None]]:
        """A connection and the function that closes it (translating connect errors)."""
        stack = ExitStack()
        try:
            conn = stack.enter_context(self.snowflake_resource.get_connection())
        except FedAssetsError:
            raise
        except Exception as err:
            # from None: a connector's login error may carry connection details.
            raise self._translate(err, connecting=True) from None

        def close() -> None:
            try:
                stack.close()  # dagster-snowflake commits (no-op in autocommit) and closes
            except Exception:  # closing after a failure must not hide the failure
                pass
            finally:
                conn.close()  # idempotent; dagster-snowflake skips it when the commit fails

        return conn, close

    def _fetch(
        self, sql: str, params: Sequence[Any] | None = None, *, table: str | None = None
    ) -> list[dict[str, Any]]:
        """Run a catalog query and return its rows as dicts keyed by upper-case column name."""
        conn, close = self._open()
        try:
            cur = conn.cursor()
            cur.execute(sql, tuple(params) if params is not None else None)
            names = [d.name.upper() for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except Exception as err:
            raise self.wrap_error(err, table=table) from None
        finally:
            close()

    def _table_row(self, table: str) -> dict[str, Any]:
        """The INFORMATION_SCHEMA.TABLES row of ``table`` (matched case-insensitively)."""
        rows = self._fetch(_TABLE_SQL, (table,), table=table)
        if not rows:
            table = self.require_table(table)  # raises UnknownTableError naming the tables
            rows = self._fetch(_TABLE_SQL, (table,), table=table)
        return rows[0]

    def _content_version(self, table: str, why: str) -> TableVersion:
        """Fingerprint of the rows: a full scan, used only where metadata cannot tell changes."""
        columns = ", ".join(
            exp.to_identifier(name, quoted=True).sql("snowflake")
            for name in self.schema(table).names  # not cached: a new column is a change too
        )
        name = self.table_expression(table).sql("snowflake")
        sql = (
            # As text: the aggregates may not fit a signed 64-bit value (fakesnow's HASH is unsigned).
            f"SELECT COUNT(*) AS N, TO_VARCHAR(BITXOR_AGG(HASH({columns}))) AS X, "
            f"TO_VARCHAR(SUM(HASH({columns}))) AS S FROM {name}"
        )
        (row,) = self._fetch(sql, table=table)
        parts = f"{row['N']}|{row['X']}|{row['S']}"
        return TableVersion(
            fingerprint=hashlib.sha256(parts.encode()).hexdigest()[:16],
            method="content",
            detail=f"content fingerprint (COUNT(*), BITXOR_AGG and SUM of HASH over all columns: "
            f"a full scan of {row['N']} rows) because {why}",
        )

    def _batches(self, chunks: Iterator[pa.Table], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Record batches of at most BATCH_ROWS rows, typed as ``schema``, from result chunks.

        The connector yields one ``pa.Table`` per result chunk Snowflake sends.
        """
        for chunk in chunks:
            for batch in self._conform(chunk, schema).to_batches(max_chunksize=BATCH_ROWS):
                if batch.num_rows:
                    yield batch

    def _conform(self, chunk: pa.Table, schema: pa.Schema) -> pa.Table:
        """Cast a result chunk to ``schema`` (the same types ``schema()`` reports)."""
        columns = []
        for column, target in zip(chunk.columns, schema, strict=True):
            if column.type == target.type:
                columns.append(column)
                continue
            try:
                columns.append(pc.cast(column, target.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
                raise SiloQueryError(
                    f"silo '{self.name}', column '{target.name}'",
                    f"a {column.type} value from Snowflake does not fit {target.type}: "
                    f"{_first_line(err)}",
                    f'cast the column in the query, e.g. "{target.name}"::VARCHAR',
                ) from None
        return pa.Table.from_arrays(columns, schema=schema)

    # ----------------------------------------------------------------- errors
    def wrap_error(self, err: Exception, *, table: str | None = None) -> FedAssetsError:
        return self._translate(err, table=table)

    def _translate(
        self, err: Exception, *, table: str | None = None, connecting: bool = False
    ) -> FedAssetsError:
        """``wrap_error``; ``connecting`` says the error came from logging in."""
        if isinstance(err, FedAssetsError):
            return err
        errno = getattr(err, "errno", None)
        text = self._scrub(_message(err))
        lowered = text.lower()
        where = f"silo '{self.name}'" + (f", table '{table}'" if table else "")
        address = self._address()

        if errno in _AUTH_ERRNOS or (
            connecting and ("password" in lowered or "authenticat" in lowered)
        ):
            return SiloAuthError(
                where,
                f"Snowflake at {address} refused to log in user '{self.user}': {text}",
                "check the silo's user and password (or private key), set through dagster.EnvVar",
            )
        if errno in _UNREACHABLE_ERRNOS or isinstance(err, _unreachable_classes()):
            return SiloUnreachableError(
                where,
                f"cannot reach Snowflake at {address}: {text}",
                "check the account identifier (and host/port/protocol for an emulator), that "
                f"the network allows the connection, and login_timeout_s={self.login_timeout_s}",
            )
        if errno == _ROLE_ERRNO:
            return ConfigurationError(
                where,
                f"role '{self.role}' cannot be used by user '{self.user}': {text}",
                "set the silo's role to one granted to the user, or None for the user's default",
            )
        if errno == _NO_WAREHOUSE_ERRNO or "no active warehouse" in lowered:
            return ConfigurationError(
                where,
                f"no usable warehouse ({self.warehouse or 'the user default'}): {text}",
                "set the silo's warehouse to one the role may USE (and that is not suspended "
                "without auto-resume)",
            )
        if errno in _NO_DATABASE_ERRNOS or (
            errno == _OBJECT_MISSING_ERRNO
            and re.match(r"(sql compilation error: )?(database|schema) '", lowered)
        ):
            return ConfigurationError(
                where,
                f"database '{self.database}' or schema '{self.snowflake_schema}' does not exist "
                f"or the role may not use it: {text}",
                "set the silo's database and snowflake_schema to ones the role can USE",
            )
        if errno == _OBJECT_MISSING_ERRNO or re.search(
            r"table with name \S+ does not exist", lowered
        ):
            missing = _named(text) or table or "?"
            return UnknownTableError(
                f"silo '{self.name}', table '{missing}'",
                f"schema {self.database}.{self.snowflake_schema} has no such table: {text}",
                f"use one of: {self._table_list()}",
            )
        if errno == _INVALID_IDENTIFIER_ERRNO or "referenced column" in lowered:
            column = _named(text) or "?"
            return UnknownColumnError(
                f"{where}, column '{column}'",
                f"no such column: {text}",
                "use a column of the table's schema(); quote lower-case names, since Snowflake "
                "upper-cases unquoted identifiers",
            )
        if errno == _SYNTAX_ERRNO or "syntax error" in lowered or "parser error" in lowered:
            return QuerySyntaxError(
                where,
                f"Snowflake rejected the SQL: {text}",
                "correct the SQL for the snowflake dialect",
            )
        if errno in _NO_PRIVILEGE_ERRNOS:
            return SiloAuthError(
                where,
                f"role '{self.role or 'default'}' may not read this: {text}",
                "GRANT USAGE on the database and schema and SELECT on the table to the role",
            )
        return SiloQueryError(
            where,
            f"Snowflake failed the query: {text}" + (f" (error {errno})" if errno else ""),
            "check the query and that the account is healthy",
        )

    # ----------------------------------------------------------------- helpers
    def _address(self) -> str:
        if self.host:
            return f"{self.protocol or 'https'}://{self.host}:{self.port or 443}"
        return f"account '{self.account}'"

    def _table_list(self) -> str:
        try:
            names = self.tables()
        except FedAssetsError:
            return "the names the silo's tables() lists"
        return ", ".join(names[:20]) or "(the schema has no tables)"

    def _scrub(self, text: str) -> str:
        for secret in (self.password, self.private_key, self.private_key_password):
            value = secret.get_value() if isinstance(secret, EnvVar) else secret
            if value and len(value) >= 4:  # shorter strings would blank ordinary words
                text = text.replace(value, "***")
        return text


def _metadata_unusable(table_type: str | None, last_altered: dt.datetime | None) -> str | None:
    """Why LAST_ALTERED cannot fingerprint this table, or None when it can."""
    if table_type and table_type.upper() not in _METADATA_TABLE_TYPES:
        return (
            f"it is a {table_type.lower()}: its LAST_ALTERED follows its definition, not the "
            "rows it reads"
        )
    if last_altered is None:
        return "INFORMATION_SCHEMA.TABLES.LAST_ALTERED is empty"
    when = last_altered if last_altered.tzinfo else last_altered.replace(tzinfo=dt.UTC)
    if when < _METADATA_EPOCH:
        return (
            f"INFORMATION_SCHEMA.TABLES.LAST_ALTERED is frozen at {last_altered.isoformat()} "
            "(the server does not maintain it, as in the fakesnow emulator)"
        )
    return None


def _named(text: str) -> str | None:
    """The object named in a Snowflake or fakesnow error ('X' / "X" / name X)."""
    for pattern in (
        r"[Oo]bject '([^']+)'",
        r"invalid identifier '([^']+)'",
        r'[Cc]olumn "([^"]+)"',
        r"[Tt]able with name (\S+) does not exist",
    ):
        match = re.search(pattern, text)
        if match:
            return match.group(1).strip('"').split(".")[-1]
    return None


def _message(err: BaseException) -> str:
    """The driver's message up to its first blank or ``LINE n:`` line, on one line.

    Snowflake puts the useful part on a second line, after "SQL compilation error:"; fakesnow
    appends the SQL with a caret below a blank line.
    """
    text = getattr(err, "raw_msg", None) or str(err)
    text = re.sub(r"^\d{6}( \(\w{5}\))?: ", "", text.strip())  # "002003 (42S02): " once is enough
    kept = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("LINE "):
            break
        kept.append(line.strip())
    # Without a closing full stop: FedAssetsError adds ". Fix: ...".
    return " ".join(kept).rstrip(".! ") or type(err).__name__


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
