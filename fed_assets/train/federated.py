"""Federated fine-tuning, embedded: one local process per site, FedAvg in this process.

Each site process reads only its own silo table, in place, and keeps its rows; per round it
receives the global trainable weights, trains locally and sends its weights back with its
example count. Every movement of weights passes the residency check (``kind="weights"``) and is
counted per route; the audit shows zero raw rows moved. The same ``Site`` code runs inside
Flower's deployment runtime (``fed_assets.train.flower``) for real sites.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fed_assets.residency import check_movement
from fed_assets.train.fedavg import fedavg, nbytes
from fed_assets.train.site import (
    FederationSpec,
    Site,
    read_site_table,
    starting_model,
    weighted_metrics,
)

log = logging.getLogger("fed_assets.train")

# Seconds a site process may take to answer one request (read + a local round on a tiny model
# takes seconds; this bounds a hung site).
SITE_TIMEOUT_S = 600


@dataclass
class FederatedResult:
    """The global model, what moved where, and the sites' held-out metrics."""

    model: Any
    routes: list[dict[str, Any]] = field(default_factory=list)
    site_metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    rounds: int = 0
    seconds: float = 0.0

    @property
    def rows_moved(self) -> int:
        return sum(r.get("rows") or 0 for r in self.routes if r["kind"] == "rows")

    @property
    def weight_bytes(self) -> int:
        return sum(r.get("bytes") or 0 for r in self.routes if r["kind"] == "weights")


def silo_settings(silo) -> dict[str, Any]:
    """A silo's configuration as plain values, to rebuild it in the site's process."""
    return {"kind": silo.kind, **silo.model_dump(exclude={"name"}, exclude_none=True)}


def train_federated(
    spec: FederationSpec,
    sites: Mapping[str, tuple[Any, str]],
    *,
    rounds: int,
    aggregator_region: str | None,
    logger: logging.Logger | None = None,
) -> FederatedResult:
    """FedAvg over ``sites`` (silo name → (silo resource, table)) for ``rounds`` rounds.

    Raises:
        PolicyViolation: a site's weights may not go to ``aggregator_region`` (before any read).
    """
    from fed_assets.train.metadata import route_dict  # dagster: not in the site processes

    logger = logger or log
    started = time.perf_counter()
    out_routes = {
        name: check_movement(silo, table, kind="weights", destination_region=aggregator_region)
        for name, (silo, table) in sites.items()
    }
    context = multiprocessing.get_context("spawn")
    pipes, procs = {}, []
    try:
        for name, (silo, table) in sites.items():
            ours, theirs = context.Pipe()
            proc = context.Process(
                target=_site_worker,
                args=(theirs, spec.to_json(), name, silo_settings(silo), table),
                daemon=True,
            )
            proc.start()
            procs.append(proc)
            pipes[name] = ours
        ready = {name: _receive(pipe, name) for name, pipe in pipes.items()}
        model = starting_model(spec)
        arrays = model.trainable_arrays()
        sent = {name: 0 for name in sites}
        received = {name: 0 for name in sites}
        for round_number in range(1, rounds + 1):
            for name, pipe in pipes.items():
                pipe.send(("train", arrays, round_number))
                sent[name] += nbytes(arrays)
            updates = []
            for name, pipe in pipes.items():
                update, examples = _receive(pipe, name)
                received[name] += nbytes(update)
                updates.append((update, examples))
            arrays = fedavg(updates)
            logger.info(
                f"federated round {round_number}/{rounds}: {len(updates)} sites, "
                f"{sum(n for _, n in updates):,} examples, {sum(nbytes(u) for u, _ in updates):,} weight bytes in"
            )
        for pipe in pipes.values():
            pipe.send(("evaluate", arrays, 0))
        site_metrics = {name: _receive(pipe, name) for name, pipe in pipes.items()}
        for pipe in pipes.values():
            pipe.send(("stop", None, 0))
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    model.set_trainable_arrays(arrays)
    routes = []
    for name, (silo, _) in sites.items():
        routes.append(route_dict(ready[name][0]))
        routes.append(
            route_dict(
                out_routes[name].moved(0, received[name], via=f"{rounds} rounds, site → aggregator")
            )
        )
        routes.append(
            {
                **route_dict(out_routes[name]),
                "source_region": out_routes[name].destination_region,
                "destination_region": silo.region,
                "rows": 0,
                "bytes": sent[name],
                "rule": "global weights back to the site",
            }
        )
    result = FederatedResult(
        model=model,
        routes=routes,
        rounds=rounds,
        site_metrics={n: m for n, (m, _) in site_metrics.items()},
    )
    model.metrics = weighted_metrics(site_metrics)
    result.seconds = time.perf_counter() - started
    model.training = {
        "rounds": rounds,
        "sites": len(sites),
        "rows trained": sum(examples for _, examples in ready.values()),
        "raw rows moved": 0,
        "weight bytes moved": sum(sent.values()) + sum(received.values()),
        "seconds": round(result.seconds, 3),
        "parameters total": model.parameters()["total"],
        "parameters trainable": model.parameters()["trainable"],
    }
    return result


def _receive(pipe, name: str):
    from fed_assets.train.errors import TrainingError

    if not pipe.poll(SITE_TIMEOUT_S):
        raise TrainingError(
            f"federated site '{name}'",
            f"no answer within {SITE_TIMEOUT_S} s",
            "check the site's silo and its process log",
        )
    kind, payload, count = pipe.recv()
    if kind == "error":
        raise TrainingError(f"federated site '{name}'", payload, "see the site's error above")
    return payload, count


def _site_worker(conn, spec_json: str, name: str, settings: dict, table: str) -> None:
    """A site's process: read its table in place once, then answer train/evaluate requests."""
    from fed_assets.config import silo_from_config

    try:
        spec = FederationSpec.from_json(spec_json)
        silo = silo_from_config(name, settings)
        rows, route = read_site_table(silo, table, spec.columns)
        site = Site(spec, rows)
        conn.send(("ready", route, site.examples))
        while True:
            command, arrays, round_number = conn.recv()
            if command == "train":
                conn.send(("update", site.train_round(arrays, round_number), site.examples))
            elif command == "evaluate":
                conn.send(("metrics", site.evaluate(arrays), len(site.prepared.held_out)))
            else:
                return
    except Exception as err:  # noqa: BLE001 - reported to the aggregator, which raises it
        conn.send(("error", f"{type(err).__name__}: {err}", 0))
