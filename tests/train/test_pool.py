"""Per-silo partitions train at the same time under the multiprocess executor, as many at once as
the ``training`` concurrency pool allows: with a limit of 1 their steps never overlap, with 2
they do (read from the steps' start and success events in the instance)."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from fed_assets.train.asset import TRAINING_POOL
from tests.servers import ROOT
from tests.train.conftest import loans
from tests.train.pool_location import SILOS, definitions

# Two runs, each a process whose step process imports torch: seconds alone, a minute under load.
pytestmark = pytest.mark.timeout(600)


def step_intervals(instance: dg.DagsterInstance) -> list[tuple[float, float]]:
    """(start, end) of the training step of every run, by its events' timestamps."""
    out = []
    for run in instance.get_runs():
        events = instance.all_logs(run.run_id)
        start = [
            e.timestamp for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_START
        ]
        end = [
            e.timestamp for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS
        ]
        assert len(start) == len(end) == 1, (run.run_id, run.status)
        out.append((start[0], end[0]))
    return sorted(out)


@pytest.mark.parametrize("limit", [1, 2])
def test_the_training_pool_bounds_simultaneous_partitions(tmp_path, monkeypatch, limit):
    for i, silo in enumerate(SILOS):
        with duckdb.connect(str(tmp_path / f"{silo}.duckdb")) as con:
            con.register("src", loans(120, seed=i))
            con.execute("CREATE TABLE loans AS SELECT * FROM src")
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f"telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: {limit}\n"
    )
    monkeypatch.setenv("FED_POOL_ROOT", str(tmp_path))
    definitions()  # writes the catalog snapshot both runs read
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    dg.DagsterInstance.get().dispose()  # its storage made once: two runs making it at once race
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.train.pool_location", silo],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for silo in SILOS
    ]
    logs = [r.communicate(timeout=500)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    with dg.DagsterInstance.get() as instance:
        pool = instance.event_log_storage.get_concurrency_info(TRAINING_POOL)
        assert pool.slot_count == limit and not pool.claimed_slots  # the steps used that pool
        (first, second) = step_intervals(instance)
    overlap = first[1] > second[0]
    assert overlap == (limit > 1), (limit, first, second)
