"""Functions each silo turned out not to have, so the planner evaluates them above it.

sqlglot transpiles most functions between dialects, but an engine may still lack one (SQLite has
no ``md5`` or ``stddev_samp``, and ``REGEXP`` only where an extension is loaded). The first time a
silo says so, the query is planned again with that function kept out of the silo's fragments, and
the silo's answer is remembered for the life of the process (by the silo's settings), so later
plans avoid it from the start.
"""

from __future__ import annotations

import re
import threading

from fed_assets.silo import SiloResource

_missing: dict[str, set[str]] = {}
_lock = threading.Lock()


def missing_functions(silo: SiloResource) -> frozenset[str]:
    """Lower-case names of the functions ``silo`` is known to lack."""
    with _lock:
        return frozenset(_missing.get(silo.settings_key(), ()))


def remember_missing(silo: SiloResource, function: str) -> bool:
    """Record that ``silo`` lacks ``function``; False when that was known already."""
    with _lock:
        names = _missing.setdefault(silo.settings_key(), set())
        if function.lower() in names:
            return False
        names.add(function.lower())
        return True


def calls_any(sql: str, functions: frozenset[str]) -> bool:
    """Whether ``sql`` (in the silo's dialect) names any of ``functions`` as a word."""
    return any(re.search(rf"\b{re.escape(name)}\b", sql, re.IGNORECASE) for name in functions)
