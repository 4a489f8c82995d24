"""The first federated query freezes the process's long-lived objects out of full GC passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.servers import ROOT

SCRIPT = """
import gc, json, sqlite3, sys, weakref
db = sys.argv[1]
with sqlite3.connect(db) as con:
    con.execute("CREATE TABLE t (id INTEGER, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(50)])
from resources.silos.sqlite import SQLiteSilo
import fed_assets
# Long-lived state a process holds before its first query (configuration, caches): cycles.
held = []
for i in range(100_000):
    node = {"i": i}
    node["self"] = node
    held.append(node)
gc.collect()
before = len(gc.get_objects())
rows = fed_assets.query("SELECT count(*) AS n FROM ref.t", [SQLiteSilo(name="ref", path=db)])
frozen = gc.get_freeze_count()
class Node: pass
late = Node(); late.me = late; probe = weakref.ref(late); del late
gc.collect()
print(json.dumps({"n": rows.table.column("n")[0].as_py(), "before": before, "frozen": frozen,
                  "late_cycle_freed": probe() is None}))
"""


def _run(tmp_path, **env) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "ref.sqlite")],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_first_query_freezes_what_the_process_holds(tmp_path):
    seen = _run(tmp_path)
    assert seen["n"] == 50
    # Everything alive at the first query, the 100,000 held cycles included, is frozen ...
    assert seen["frozen"] >= seen["before"] > 100_000
    # ... and cycles made afterwards are still collected.
    assert seen["late_cycle_freed"]


@pytest.mark.parametrize("value", ["0", "off"])
def test_the_freeze_can_be_turned_off(tmp_path, value):
    seen = _run(tmp_path, FED_ASSETS_GC_FREEZE=value)
    assert seen["n"] == 50
    assert seen["frozen"] == 0
    assert seen["late_cycle_freed"]
