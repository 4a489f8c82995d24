"""A small thread-safe pool of idle database connections, kept for reuse across scans."""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Hashable
from typing import Any

# Idle connections one pool keeps: a federated query runs up to 8 fragments at once
# (execute.MAX_PARALLEL) over several silos, so rarely more than a few on one silo; the rest are
# closed on return so that a burst does not hold server backends (and their memory) while idle.
POOL_IDLE_MAX = 4

# Seconds a connection may wait in the pool before it is closed instead of reused: spans the
# queries of one asset run or sensor tick, and stays below the idle timeouts of servers, PgBouncer
# and cloud NATs / load balancers (minutes), so a reused connection has rarely been cut meanwhile.
POOL_IDLE_S = 60.0


class ConnectionPool:
    """Idle connections of one resource, reused by the threads that scan it.

    The pool only keeps what it is given: callers open connections themselves, ``take`` an idle one
    first, and ``give_back`` a connection only when it is known to be clean (no statement running,
    session state reset); a connection that failed is closed, never given back. Connections are
    filed under a key (a digest of the connection settings), since pydantic's ``model_copy`` shares
    this pool between copies of a resource whose settings may differ. Idle connections are closed
    when the pool is garbage-collected and at the latest when the process exits.
    """

    def __init__(self, *, idle_max: int = POOL_IDLE_MAX, idle_s: float = POOL_IDLE_S) -> None:
        self.idle_max = idle_max
        self.idle_s = idle_s
        self._lock = threading.Lock()
        # (key, connection, monotonic time it was given back), least recently given back first.
        self._idle: list[tuple[Hashable, Any, float]] = []
        # Holds the list, not the pool, so the pool can still be collected; also runs at exit.
        weakref.finalize(self, _close_all, self._idle)

    def take(self, key: Hashable) -> Any | None:
        """The most recently given back connection filed under ``key``, or None if there is none.

        Connections idle longer than ``idle_s`` are closed on the way, never handed out.
        """
        with self._lock:
            expired = self._expire()
            found = None
            for index in range(len(self._idle) - 1, -1, -1):
                if self._idle[index][0] == key:
                    found = self._idle.pop(index)[1]
                    break
        _close_each(expired)
        return found

    def give_back(self, key: Hashable, connection: Any) -> None:
        """Keep ``connection`` for reuse, or close it when ``idle_max`` connections wait already."""
        with self._lock:
            expired = self._expire()
            if len(self._idle) < self.idle_max:
                self._idle.append((key, connection, time.monotonic()))
                connection = None
        _close_each(expired if connection is None else [*expired, connection])

    def clear(self) -> None:
        """Close every idle connection now; connections in use are closed or kept when returned."""
        with self._lock:
            idle = [connection for _, connection, _ in self._idle]
            self._idle.clear()
        _close_each(idle)

    def idle_count(self) -> int:
        """How many connections wait idle."""
        with self._lock:
            return len(self._idle)

    def _expire(self) -> list[Any]:
        """Remove and return the connections idle longer than ``idle_s`` (caller holds the lock)."""
        deadline = time.monotonic() - self.idle_s
        stale = 0
        while stale < len(self._idle) and self._idle[stale][2] < deadline:
            stale += 1
        expired = [connection for _, connection, _ in self._idle[:stale]]
        del self._idle[:stale]
        return expired


def _close_each(connections: list[Any]) -> None:
    for connection in connections:
        with contextlib.suppress(Exception):  # a connection the server dropped may fail to close
            connection.close()


def _close_all(idle: list[tuple[Hashable, Any, float]]) -> None:
    connections = [connection for _, connection, _ in idle]
    idle.clear()
    _close_each(connections)
