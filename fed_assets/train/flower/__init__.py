"""Federated fine-tuning across real sites through Flower's deployment runtime.

``train_with_flower`` starts a SuperLink and one SuperNode per site as processes on 127.0.0.1,
each SuperNode told (by its node config) the one silo it may read; runs the app in ``app/`` with
``flwr run``; polls ``flwr ls`` until the run finishes; and stops the processes. The ServerApp
aggregates with Flower's own FedAvg; the ClientApp is the same ``Site`` code as the embedded
runtime, so both train the same way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from fed_assets.residency import check_movement
from fed_assets.train.errors import TrainingError
from fed_assets.train.fedavg import nbytes
from fed_assets.train.federated import FederatedResult, silo_settings
from fed_assets.train.metadata import route_dict
from fed_assets.train.site import FederationSpec, starting_model

# The Flower app's folder inside this package (package data: it ships in the wheel).
APP = "app"
# Seconds the SuperLink and SuperNodes get to come up, and a run to finish (15–20 s a round).
START_TIMEOUT_S = 60
RUN_TIMEOUT_S = 600
log = logging.getLogger("fed_assets.train")


def train_with_flower(
    spec: FederationSpec,
    sites: dict[str, tuple[Any, str]],
    *,
    rounds: int,
    aggregator_region: str | None,
    logger: logging.Logger | None = None,
) -> FederatedResult:
    """FedAvg over ``sites`` through a local Flower deployment (see module docstring)."""
    logger = logger or log
    started = time.perf_counter()
    routes_out = {
        n: check_movement(s, t, kind="weights", destination_region=aggregator_region)
        for n, (s, t) in sites.items()
    }
    reads = {
        n: check_movement(s, t, spec.columns, kind="rows", destination_region=s.region)
        for n, (s, t) in sites.items()
    }
    work = Path(tempfile.mkdtemp(prefix="fed-flower-"))
    env = _env(work)
    procs: list[subprocess.Popen] = []
    try:
        (work / "spec.json").write_text(spec.to_json())
        link = _port()
        procs.append(
            _start(
                [
                    "flower-superlink",
                    "--insecure",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(link),
                    "--disable-runtime-dependency-installation",
                ],
                work / "superlink.log",
                env,
            )
        )
        _wait(lambda: _healthy(link), "the Flower SuperLink", procs[0], work / "superlink.log")
        for index, (name, (silo, table)) in enumerate(sorted(sites.items())):
            site_file = work / f"site-{name}.json"  # this SuperNode's silo only
            site_file.write_text(
                json.dumps({"name": name, "settings": silo_settings(silo), "table": table})
            )
            config = f'partition-id={index} silo="{name}" site-file="{site_file}"'
            procs.append(
                _start(
                    [
                        "flower-supernode",
                        "--insecure",
                        "--superlink",
                        f"127.0.0.1:{link}",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(_port()),
                        "--node-config",
                        config,
                    ],
                    work / f"supernode-{name}.log",
                    env,
                )
            )
        for proc, name in zip(procs[1:], sorted(sites), strict=True):
            _wait(
                lambda n=name: (
                    "SuperNode ID" in _read(work / f"supernode-{n}.log")
                    or "Starting Flower SuperNode" in _read(work / f"supernode-{n}.log")
                ),
                f"the SuperNode of {name}",
                proc,
                work / f"supernode-{name}.log",
            )
        (work / "config.toml").write_text(
            f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{link}"\ninsecure = true\n'
        )
        run_config = f'spec="{work / "spec.json"}" out="{work}" rounds={rounds} sites={len(sites)}'
        app = work / "app"
        with resources.as_file(app_folder()) as source:
            shutil.copytree(source, app, ignore=shutil.ignore_patterns("__pycache__"))
        launched = subprocess.run(
            ["flwr", "run", str(app), "local", "--run-config", run_config, "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        run_id = _run_id(launched.stdout)
        logger.info(f"Flower run {run_id} started: {len(sites)} SuperNodes, {rounds} rounds")
        _wait_finished(run_id, env, work)
        import numpy as np

        model = starting_model(spec)
        with np.load(work / "weights.npz") as weights:
            model.set_trainable_arrays({k: weights[k] for k in weights.files})
        evaluated = json.loads((work / "metrics.json").read_text())
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    size = nbytes(model.trainable_arrays())
    routes = []
    for name, (silo, _) in sites.items():
        routes.append(_route(reads[name], 0, 0, "read at the site; no row leaves"))
        routes.append(_route(routes_out[name], 0, rounds * size, f"{rounds} rounds through Flower"))
        routes.append(
            {
                **_route(routes_out[name], 0, rounds * size, "global weights back to the site"),
                "source_region": routes_out[name].destination_region,
                "destination_region": silo.region,
            }
        )
    final = evaluated[max(evaluated, key=int)] if evaluated else {}
    model.metrics = {}
    for key, value in final.items():
        if "." in key:
            who, metric = key.split(".", 1)
            model.metrics.setdefault(who, {})[metric] = float(value)
    seconds = time.perf_counter() - started
    model.training = {
        "rounds": rounds,
        "sites": len(sites),
        "runtime": "flower",
        "raw rows moved": 0,
        "rows trained": None,
        "weight bytes moved": 2 * rounds * size * len(sites),
        "seconds": round(seconds, 3),
        **{f"parameters {k}": v for k, v in model.parameters().items()},
    }
    shutil.rmtree(work, ignore_errors=True)
    return FederatedResult(model=model, routes=routes, rounds=rounds, seconds=seconds)


def _route(route, rows: int, nbytes_: int, via: str) -> dict[str, Any]:
    return {**route_dict(route), "rows": rows, "bytes": nbytes_, "via": via}


def app_folder():
    """The Flower app (its pyproject.toml and ``fed_flower_app``), found as package data so it
    is there in a non-editable install too."""
    return resources.files(__name__) / APP


def _env(work: Path) -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[3])
    return {
        **os.environ,
        "FLWR_HOME": str(work),
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], logfile: Path, env: dict[str, str]) -> subprocess.Popen:
    out = open(logfile, "wb")  # noqa: SIM115 - the process owns it until it exits
    return subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _wait(ready, what: str, proc: subprocess.Popen, logfile: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TrainingError(
                what,
                f"exited with {proc.returncode}: {_read(logfile)[-800:]}",
                "check that flwr 1.42 is installed in this environment",
            )
        if ready():
            return
        time.sleep(0.5)
    raise TrainingError(
        what,
        f"not ready within {START_TIMEOUT_S} s: {_read(logfile)[-800:]}",
        "check the log and that the ports are free",
    )


def _run_id(stdout: str) -> str:
    try:
        values = json.loads(stdout[stdout.index("{") :])
        return str(values.get("run-id") or values.get("run_id"))
    except (ValueError, AttributeError):
        raise TrainingError(
            "flwr run", f"no run id in its output: {stdout[-800:]}", "check the SuperLink log"
        ) from None


def _wait_finished(run_id: str, env: dict[str, str], work: Path) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["flwr", "ls", "--run-id", run_id, "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        text = listed.stdout
        if '"status": "finished:' in text or '"status": "finished:completed"' in text:
            if "finished:completed" in text:
                return
            raise TrainingError(
                f"Flower run {run_id}",
                f"it ended as {text[text.index('finished:') :][:40]}",
                f"see the SuperNode logs under {work}",
            )
        time.sleep(2)
    raise TrainingError(
        f"Flower run {run_id}", f"not finished within {RUN_TIMEOUT_S} s", "see the logs"
    )
