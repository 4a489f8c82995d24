"""PostgreSQL errors as ``FedAssetsError``s: SQLSTATEs and libpq messages to what a user can fix."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fed_assets.errors import (
    ConfigurationError,
    FedAssetsError,
    QuerySyntaxError,
    ReadOnlyViolation,
    SiloAuthError,
    SiloQueryError,
    SiloTimeoutError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownTableError,
)

if TYPE_CHECKING:
    import adbc_driver_manager

    from resources.silos.postgres import PostgresSilo

# SQLSTATEs (https://www.postgresql.org/docs/15/errcodes-appendix.html) mapped to our errors.
_UNDEFINED_TABLE = "42P01"
_UNDEFINED_COLUMN = "42703"
_READ_ONLY = "25006"
_SYNTAX_ERROR = "42601"
_INSUFFICIENT_PRIVILEGE = "42501"
_INVALID_AUTHORIZATION = ("28000", "28P01")
_INVALID_CATALOG = "3D000"
_QUERY_CANCELED = "57014"  # statement_timeout, or a cancel request (the query gave up on it)

# libpq connection failures, matched on the message since no SQLSTATE reaches the client then.
_AUTH_PATTERNS = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "no pg_hba.conf entry",
    'role "',
)
_UNREACHABLE_PATTERNS = (
    "connection refused",
    "could not translate host name",
    "no route to host",
    "network is unreachable",
    "timeout expired",
    "could not connect",
    "server closed the connection unexpectedly",
    "no such file or directory",
    "connection timed out",
    "host is unreachable",
)
# A pooled session the server ended while it sat idle (restart, pg_terminate_backend,
# idle_session_timeout, a proxy or NAT dropping it): SQLSTATE class 08, admin / crash shutdown and
# idle-session timeout, or libpq's messages, which carry no SQLSTATE.
_LOST_SQLSTATES = ("57P01", "57P02", "57P05")
_LOST_PATTERNS = (
    "server closed the connection unexpectedly",
    "no connection to the server",
    "terminating connection due to",
    "connection to server was lost",
    "could not send data to server",
    "could not receive data from server",
    "ssl connection has been closed unexpectedly",
    "ssl syscall error",
    "connection reset by peer",
    "broken pipe",
)


def classify(silo: PostgresSilo, err: Exception, *, table: str | None = None) -> FedAssetsError:
    """The ``FedAssetsError`` for a driver error of ``silo`` (passwords scrubbed)."""
    if isinstance(err, FedAssetsError):
        return err
    text = silo._scrub(str(err))
    if (missing := silo.unsupported_function(str(err))) is not None:
        return missing
    sqlstate = getattr(err, "sqlstate", None)
    reason = _server_message(text)
    lowered = text.lower()
    where = f"silo '{silo.name}'" + (f", table '{table}'" if table else "")
    address = f"{silo.host}:{silo.port}"
    connecting = "failed to connect" in lowered or (sqlstate or "").startswith("08")

    if sqlstate in _INVALID_AUTHORIZATION or (
        connecting and any(p in lowered for p in _AUTH_PATTERNS)
    ):
        return SiloAuthError(
            where,
            f"PostgreSQL at {address} refused to log in user '{silo.user}': {reason}",
            "check the silo's user and password (set the password through dagster.EnvVar) "
            "and that pg_hba.conf admits this client",
        )
    if sqlstate == _INVALID_CATALOG or (connecting and "does not exist" in lowered):
        return ConfigurationError(
            where,
            f"PostgreSQL at {address} has no database '{silo.database}': {reason}",
            "set the silo's database to an existing database",
        )
    if connecting or any(p in lowered for p in _UNREACHABLE_PATTERNS):
        return SiloUnreachableError(
            where,
            f"cannot reach PostgreSQL at {address}: {reason}",
            "check that the server runs, that host and port are right and that the network "
            f"allows the connection (connect_timeout_s={silo.connect_timeout_s})",
        )
    if sqlstate == _UNDEFINED_TABLE:
        missing = _quoted(reason, "relation") or table
        return UnknownTableError(
            f"silo '{silo.name}', table '{missing}'",
            f"schema '{silo.schema_}' has no such table: {reason}",
            "use one of the names the silo's tables() lists",
        )
    if sqlstate == _UNDEFINED_COLUMN:
        column = _quoted(reason, "column") or "?"
        return UnknownColumnError(
            f"{where}, column '{column}'",
            f"no such column: {reason}",
            "use a column of the table's schema()",
        )
    if sqlstate == _READ_ONLY:
        return ReadOnlyViolation(
            where,
            f"the query tried to write in a read-only session: {reason}",
            "send a read-only SELECT; write results through an IO manager instead",
        )
    if sqlstate == _QUERY_CANCELED or "canceling statement due to" in lowered:
        bound = silo.time_bound()
        return SiloTimeoutError(
            where,
            f"PostgreSQL cancelled the statement after the time bound of {bound:g} s ({reason})",
            "raise the bound (the silo's statement_timeout_s, timeout_s on query() or on "
            "federated_asset), or "
            "make the query cheaper (filter or aggregate more in the silo)",
        )
    if sqlstate == _SYNTAX_ERROR:
        return QuerySyntaxError(
            where,
            f"PostgreSQL rejected the SQL: {reason}",
            "correct the SQL for the postgres dialect",
        )
    if sqlstate == _INSUFFICIENT_PRIVILEGE:
        return SiloAuthError(
            where,
            f"user '{silo.user}' may not read this: {reason}",
            "GRANT SELECT on the table (and USAGE on its schema) to the silo's user",
        )
    return SiloQueryError(
        where,
        f"PostgreSQL failed the query: {reason}" + (f" (SQLSTATE {sqlstate})" if sqlstate else ""),
        "check the query and that the server is healthy",
    )


def _server_message(text: str) -> str:
    """The server's own message (after ``ERROR:``/``FATAL:``), else the driver's first line."""
    match = re.search(r"(?:ERROR|FATAL):\s+([^\n]+)", text)
    if match:
        return match.group(1).strip()
    first = text.strip().splitlines()[0] if text.strip() else type(text).__name__
    return re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", first).strip()


def _quoted(reason: str, noun: str) -> str | None:
    """The name in ``<noun> "name" does not exist`` (also ``column t.name``)."""
    match = re.search(rf'{noun} "([^"]+)"', reason)
    if not match:
        return None
    return match.group(1).split(".")[-1]


def connection_lost(err: adbc_driver_manager.Error) -> bool:
    """Whether ``err`` says the session itself is gone, rather than that the query failed."""
    sqlstate = getattr(err, "sqlstate", None) or ""
    # The driver appends the query to its message; a query's text must not look like a failure.
    text = str(err).split("Query was:", 1)[0].lower()
    return (
        sqlstate.startswith("08")
        or sqlstate in _LOST_SQLSTATES
        or any(pattern in text for pattern in _LOST_PATTERNS)
    )
