"""Keep Python's cyclic garbage collector off the objects a process holds for good.

Planning builds and drops many sqlglot trees; their nodes point at their parents, so they are
reference cycles that only the cyclic collector frees, and they trigger its full (oldest
generation) collections every few queries. A full collection walks every object the process
tracks: with Dagster, pydantic, sqlglot, pyarrow and DuckDB imported that is about 210,000 objects,
measured here at 0.25-1.6 s per collection; at TPC-H SF1 such a pause landed inside planning on
one query of 22 in four of seven layouts (170-270 ms planning against 20-45 ms for the others).
``gc.freeze()`` moves the objects alive at the first query (imports, configuration) to the
permanent generation that collections skip, the use the Python documentation gives it; after that
a full collection over ten rounds of queries walked 6,800 objects in 8.5 ms. Set
``FED_ASSETS_GC_FREEZE=0`` to leave the collector as it is.
"""

from __future__ import annotations

import gc
import os
import threading

# The environment variable that turns the freeze off ("0", "false", "no", "off").
GC_FREEZE_ENV = "FED_ASSETS_GC_FREEZE"

_LOCK = threading.Lock()
_settled = False


def settle_heap() -> bool:
    """Freeze the objects alive now, once per process (unless ``FED_ASSETS_GC_FREEZE`` says no).

    Returns whether this call froze them. No collection runs first: the few cycles already
    garbage stay allocated, where a collection would cost the first query the full pause.
    """
    global _settled
    if _settled:
        return False
    with _LOCK:
        if _settled:
            return False
        _settled = True
        if os.environ.get(GC_FREEZE_ENV, "1").strip().lower() in {"0", "false", "no", "off"}:
            return False
        gc.freeze()
        return True
