"""Step start-up of the demo: how long a run waits before each asset's step starts, and why.

Run by hand (not in CI): ``.venv/bin/python -m benchmarks.step_startup [--runs N]``. Seeds the demo
silos in a temporary folder, then materialises each demo asset with Dagster's own multiprocess
executor (``dagster asset materialize``, as a run launched from the UI does: every step is a
fresh process that loads the code location) and reads the run's events from the instance. Prints
a Markdown table: launch → step start, step start → step success, the whole run, and the import
time of the code location and of ``fed-assets --help`` in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The demo assets, with the partition a run of each targets (None: unpartitioned).
ASSETS = {
    "monthly_volume_by_country": "2025-06-01",
    "default_rate_by_segment": None,
    "sar_rate_by_structuring": None,
    "credit_features": None,
    "aml_training_set": None,
}


def _fresh_seconds(args: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``python *args`` in a fresh interpreter. CPU time (user +
    system of the child) hardly moves with the machine's load; wall time does."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def _run(asset: str, partition: str | None, env: dict[str, str]) -> dict[str, float]:
    """Materialise one asset through the CLI; the step timings from the instance's event log."""
    import dagster as dg

    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "asset", "materialize", "-m", "fed_assets.demo.definitions"]
    cmd += ["--select", asset] + (["--partition", partition] if partition else [])
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        run = instance.get_runs(limit=1)[0]
        events = {}
        for record in instance.all_logs(run.run_id):
            if record.dagster_event is not None:
                events.setdefault(record.dagster_event.event_type, record.timestamp)
    kind = dg.DagsterEventType
    return {
        "launch → step start": events[kind.STEP_START] - events[kind.RUN_START],
        "step": events[kind.STEP_SUCCESS] - events[kind.STEP_START],
        "run (wall)": wall,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per asset (median shown)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fed-startup-"))
    env = {
        **os.environ,
        "FED_ASSETS_DATA": str(work / "data"),
        "DAGSTER_HOME": str(work / "home"),
    }
    (work / "home").mkdir()
    (work / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    subprocess.run([sys.executable, "-m", "fed_assets.cli", "demo", "seed"], env=env, check=True)
    load = _fresh_seconds(["-c", "import fed_assets.demo.definitions"], env, args.runs)
    help_s = _fresh_seconds(["-m", "fed_assets.cli", "--help"], env, args.runs)
    print(f"\nload average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| fresh interpreter | wall (s) | CPU (s) |\n|---|---:|---:|")
    print(f"| import the demo code location | {load[0]:.2f} | {load[1]:.2f} |")
    print(f"| `fed-assets --help` | {help_s[0]:.2f} | {help_s[1]:.2f} |\n")
    print("| asset | launch → step start (s) | step (s) | run, wall (s) |")
    print("|---|---:|---:|---:|")
    for asset, partition in ASSETS.items():
        runs = [_run(asset, partition, env) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"| {asset} | {med['launch → step start']:.2f} | {med['step']:.2f} | "
            f"{med['run (wall)']:.2f} |"
        )


if __name__ == "__main__":
    main()
