"""The embedded DuckDB engines a process keeps: one database per purpose, a cursor per query.

Opening a DuckDB database costs about 10 ms and forgets what the last query learnt (Parquet
footers, the external file cache). A federated query opens several (one per lake fragment, one for
the residual), so each purpose keeps one database for the life of the process and every query takes
its own ``cursor()``: cursors share the database's caches, memory limit and thread pool, but not
their registered Arrow tables or temporary views, so concurrent queries cannot see each other's.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Callable, Hashable

import duckdb

# Memory one engine may use before it spills to disk. Several engines live in one process (the
# residual's, one per lake silo), so each gets a share of a 24 GB machine rather than DuckDB's
# default of 80 % of RAM each.
ENGINE_MEMORY_LIMIT = "4GB"

_lock = threading.Lock()
_engines: dict[Hashable, duckdb.DuckDBPyConnection] = {}
_spill_root: str | None = None


def cursor(
    key: Hashable,
    *,
    memory_limit: str = ENGINE_MEMORY_LIMIT,
    setup: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A new cursor on the engine named ``key``, opened (and ``setup`` run once) on first use.

    ``key`` names the purpose and everything ``setup`` depends on (a silo's name and root), so a
    changed setting opens a new engine. Close the cursor when its query is done.
    """
    with _lock:
        engine = _engines.get((key, memory_limit))
        if engine is None:
            engine = duckdb.connect(
                ":memory:",
                config={"memory_limit": memory_limit, "temp_directory": _spill_folder()},
            )
            try:
                engine.execute("SET parquet_metadata_cache = true")
                if setup is not None:
                    setup(engine)
            except BaseException:
                engine.close()
                raise
            _engines[(key, memory_limit)] = engine
        return engine.cursor()


def close_all() -> None:
    """Close every engine (their cursors stop working) and remove the spill folders."""
    global _spill_root
    with _lock:
        for engine in _engines.values():
            engine.close()
        _engines.clear()
        if _spill_root is not None:
            shutil.rmtree(_spill_root, ignore_errors=True)
            _spill_root = None


def _spill_folder() -> str:
    """A folder for one engine's spilled data, under a per-process folder removed at exit."""
    global _spill_root
    if _spill_root is None:
        _spill_root = tempfile.mkdtemp(prefix="fed-assets-spill-")
    return tempfile.mkdtemp(dir=_spill_root)


atexit.register(close_all)
