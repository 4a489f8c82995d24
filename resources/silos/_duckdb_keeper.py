"""DuckDB database files held open between scans for a moment, so a burst of queries opens each
file once."""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import threading
from collections.abc import Callable

import duckdb

# Seconds a file stays open after its last cursor closed, by default. Opening a DuckDB file reads
# its catalog and close drops its buffer cache: 25-65 ms per open here, against 7 ms for a small
# aggregate over a warm file. One federated query holds its files open from planning to its last
# fragment anyway (``DuckDBSilo.hold``); past that the default closes them at once, because a
# read-only handle blocks writers: in another process until it closes, and in this process for
# good (DuckDB refuses a read-write connection to a file opened read-only). A file only read (a
# warehouse extract) may set ``keep_open_s`` so that back-to-back queries open it once.
KEEP_OPEN_S = 0.0


class _Held:
    """One open database file: the root connection, its cursors in use, and its idle timer."""

    def __init__(self, path: str, mark: tuple, root: duckdb.DuckDBPyConnection) -> None:
        self.path = path
        self.mark = mark
        self.root = root
        self.in_use = 0
        self.timer: threading.Timer | None = None
        self.retired = False


_LOCK = threading.Lock()
_HELD: dict[str, _Held] = {}


def cursor(
    path: str, *, keep_open_s: float, connect: Callable[[], duckdb.DuckDBPyConnection]
) -> tuple[duckdb.DuckDBPyConnection, Callable[[], None]]:
    """A connection to the DuckDB file at ``path`` and the function that releases it.

    With ``keep_open_s`` > 0 the file is opened once (``connect``) and each caller gets a cursor of
    it; the file closes ``keep_open_s`` after the last cursor was released (``math.inf``: when
    ``settle`` says), or as soon as it is idle once the file on disk changed (another file renamed
    over it). With 0 the caller gets a cursor of the file if it is held open already, else its own
    connection, closed on release.
    """
    key = os.path.realpath(path)
    mark = _mark(key)
    with _LOCK:
        held = _HELD.get(key)
        if held is not None and held.mark != mark:
            _retire(held)
            held = None
        if held is None:
            if keep_open_s <= 0:
                con = connect()
                return con, con.close
            held = _Held(key, mark, connect())
            _HELD[key] = held
        if held.timer is not None:
            held.timer.cancel()
            held.timer = None
        held.in_use += 1
        try:
            con = held.root.cursor()
        except BaseException:
            held.in_use -= 1
            raise
    released = False

    def release() -> None:
        nonlocal released
        if released:
            return
        released = True
        with contextlib.suppress(Exception):
            con.close()
        with _LOCK:
            held.in_use -= 1
            if held.in_use:
                return
            if held.retired:
                _close(held)
            elif keep_open_s != math.inf:
                _arm(held, keep_open_s)

    return con, release


def settle(path: str, keep_open_s: float) -> None:
    """Close the file at ``path`` in ``keep_open_s`` seconds (0: now) if no cursor is in use."""
    with _LOCK:
        held = _HELD.get(os.path.realpath(path))
        if held is None or held.in_use:
            return
        if keep_open_s <= 0:
            _retire(held)
        else:
            _arm(held, keep_open_s)


def close_all() -> None:
    """Close every idle held file now (files in use close when their last cursor is released)."""
    with _LOCK:
        for held in list(_HELD.values()):
            _retire(held)


def close_path(path: str) -> None:
    """Close the file at ``path`` now if it is idle (else when its last cursor is released)."""
    with _LOCK:
        held = _HELD.get(os.path.realpath(path))
        if held is not None:
            _retire(held)


def held_paths() -> list[str]:
    """The files held open now (for tests and diagnostics)."""
    with _LOCK:
        return sorted(_HELD)


def _arm(held: _Held, keep_open_s: float) -> None:
    """Close ``held`` after ``keep_open_s`` idle seconds (caller holds the lock)."""
    if held.timer is not None:
        held.timer.cancel()
    held.timer = threading.Timer(keep_open_s, _expire, args=(held,))
    held.timer.daemon = True
    held.timer.start()


def _expire(held: _Held) -> None:
    with _LOCK:
        if held.in_use == 0 and not held.retired:
            _retire(held)


def _retire(held: _Held) -> None:
    """Forget ``held`` (caller holds the lock) and close it now if no cursor is in use."""
    held.retired = True
    if _HELD.get(held.path) is held:
        del _HELD[held.path]
    if held.timer is not None:
        held.timer.cancel()
        held.timer = None
    if held.in_use == 0:
        _close(held)


def _close(held: _Held) -> None:
    with contextlib.suppress(Exception):
        held.root.close()


def _mark(path: str) -> tuple:
    """Identity of the file at ``path`` now: a file renamed over it has another inode."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ()
    return (st.st_ino, st.st_dev)


atexit.register(close_all)
