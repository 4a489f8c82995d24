"""Where a model asset trains: the compute estate's choice before the run, measured beside it.

A model asset given a ``compute`` resource (``resources.compute.ComputeEstate``) estimates its
run from the training config and the rows the catalog says its inputs hold, lets
``fed_assets.placement`` choose the pool (memory, deadline, budget and the inputs' residency)
before a row is read, refines the estimate from the rows it did read, measures the run, appends
it to the estate's history (which recalibrates the next estimate) and records placement, reasons
and the estimate-against-actual table in its materialisation. The placement's tags are recorded
too: a retrain requested by the source-change sensor carries them to where the model was placed.

All three model factories use this one module: ``fine_tuned_model`` (one pool within its inputs'
residency), ``per_silo_model`` (each partition on a pool within its own silo's residency) and
``federated_model`` (each site within its own region, the FedAvg aggregation in the aggregator's
region, and the weight bytes each route carries).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fed_assets.train.config import TrainingConfig

# GPT-2 block: attention (4·d²) + MLP (8·d²) weights, plus biases and two layer norms (13·d).
_BLOCK_SQUARES, _BLOCK_LINEAR = 12, 13
# LoRA on GPT-2's fused ``c_attn`` (d → 3d): A is r × d, B is 3d × r per layer.
_C_ATTN_OUT = 3
# Classes assumed for a classifier's head before its rows are read (the head is d × classes
# weights, a rounding error beside the blocks; the refined estimate counts the real ones).
_CLASSES_BEFORE_READ = 2
# Bytes of a trainable weight on the wire between a federated site and the aggregator (fp32).
_WIRE_BYTES = 4


@dataclass(frozen=True)
class PlacementGoal:
    """What a model asset's placement minimises and the limits it must meet.

    Attributes:
        objective: ``"money"``, ``"time"`` or ``"co2"``.
        deadline_s: the training must be estimated to finish within this many seconds.
        budget_usd: it may be estimated to cost at most this much.
    """

    objective: str = "money"
    deadline_s: float | None = None
    budget_usd: float | None = None


def offline_shape(config: TrainingConfig, *, method: str, classes: int = 0) -> dict[str, int]:
    """Parameters (total, trainable) and shape of the offline GPT-2 base for ``config``.

    The tokenizer is trained to ``config.vocab_size`` (a small dataset may give fewer tokens,
    so this is an upper bound). On the offline base, LoRA also trains the embeddings (a random
    base learns nothing through adapters alone), so trainable = adapters + embeddings + head.
    """
    d, layers, vocab = config.n_embd, config.n_layer, config.vocab_size
    embeddings = vocab * d + config.max_length * d
    head = d * classes
    total = embeddings + layers * (_BLOCK_SQUARES * d * d + _BLOCK_LINEAR * d) + 2 * d + head
    adapters = layers * config.lora_r * (d + _C_ATTN_OUT * d)
    trainable = total if method == "full" else adapters + embeddings + head
    return {
        "params": total + (adapters if method != "full" else 0),
        "trainable": trainable,
        "n_layer": layers,
        "d_model": d,
        "n_head": config.n_head,
        "vocab": vocab,
    }


def training_tokens(rows: int, config: TrainingConfig, *, epochs: float | None = None) -> int:
    """Tokens the loop processes: the training split × epochs × tokens per row.

    Tokens per row is ``config.max_length``: every rendered row is cut to it and a batch is
    padded to its longest row, so it is the bound a run reaches when any row of a batch is long
    (the demo's rows render to most of it).
    """
    train_rows = max(1, round(rows * (1 - config.eval_fraction)))
    return int(train_rows * (config.epochs if epochs is None else epochs) * config.max_length)


def catalog_rows(catalog: Any, silo: Any, table: str) -> int | None:
    """Rows of ``silo.table`` without reading one: the catalog snapshot's count, else the silo's
    own statistics (metadata); ``None`` when neither can say."""
    for entry in catalog.tables():
        if entry.silo == silo.name and entry.table == table and entry.rows is not None:
            return int(entry.rows)
    try:
        return silo.stats(table).rows
    except Exception:  # noqa: BLE001 - statistics are optional; the read then decides
        return None


def choose_placement(
    estate: Any,
    config: TrainingConfig,
    *,
    method: str,
    rows: int,
    classes: int,
    inputs: Sequence[tuple[Any, str, Sequence[str]]],
    pools: Sequence[Any] | None = None,
    goal: PlacementGoal | None = None,
    epochs: float | None = None,
):
    """The estate's placement for training on ``rows`` rows (raises ``PlacementRefused``).

    Args:
        pools: the candidates (default: every pool of the estate); a site's training passes
            ``estate.site_pools(region)``.
        epochs: epochs over the rows (default ``config.epochs``; a federated site's rounds ×
            local epochs).
    """
    from fed_assets.placement import placement_for_training

    goal = goal or PlacementGoal()
    shape = offline_shape(config, method=method, classes=classes)
    trainable = shape.pop("trainable")
    return placement_for_training(
        estate,
        tokens=training_tokens(rows, config, epochs=epochs),
        method="full" if method == "full" else "lora",
        trainable=None if method == "full" else trainable,
        inputs=inputs,
        batch_size=config.batch_size,
        seq_len=config.max_length,
        pools=pools,
        objective=goal.objective,
        deadline_s=goal.deadline_s,
        budget_usd=goal.budget_usd,
        **shape,
    )


@dataclass(frozen=True)
class TrainingRequest:
    """What a model asset asks the estate: where to train ``config`` by ``method`` on rows of
    ``inputs`` ((silo, table, columns read)), among ``pools`` (default: all), by ``goal``."""

    estate: Any
    config: TrainingConfig
    method: str
    inputs: tuple[tuple[Any, str, Sequence[str]], ...]
    pools: tuple[Any, ...] | None = None
    goal: PlacementGoal | None = None

    def choose(self, rows: int, classes: int):
        """The placement for ``rows`` rows (raises ``PlacementRefused``)."""
        return choose_placement(
            self.estate,
            self.config,
            method=self.method,
            rows=rows,
            classes=classes,
            inputs=self.inputs,
            pools=self.pools,
            goal=self.goal,
        )

    def before_read(self, catalog: Any):
        """The placement from the catalog's row counts, before any row moves; ``None`` when
        some input's size is unknown (the rows read then decide, ``refine``)."""
        counts = [catalog_rows(catalog, silo, table) for silo, table, _ in self.inputs]
        if any(c is None for c in counts):
            return None
        return self.choose(sum(counts), _CLASSES_BEFORE_READ)

    def refine(self, before, *, rows: int, classes: int):
        """The placement from the rows actually read: the pool chosen before the read,
        estimated again (or, with no choice before the read, chosen now)."""
        if before is None:
            return self.choose(rows, classes)
        again = dataclasses.replace(self, inputs=(), pools=(before.pool,), goal=None)
        return dataclasses.replace(before, estimate=again.choose(rows, classes).estimate)


def measured_training(estate: Any, placement, *, label: str, train: Callable[[], Any]):
    """``train()`` (a fine-tune returning a ``FineTunedModel``) measured on the placement's
    pool: returns the model and the measurement (``None`` without a placement). A run that
    resumed from a checkpoint trained only part of what was estimated, so it is shown but kept
    out of the history that calibrates."""
    with placed_run(estate, placement, label=label) as run:
        model = train()
        if run is not None:
            run.tokens = model.training["tokens trained"]
            run.calibrates = not model.training["resumed from step"]
    return model, run


@contextlib.contextmanager
def placed_run(estate: Any, placement, *, label: str) -> Iterator[Any]:
    """Measure the training inside the block on the placement's pool (``None`` without a
    placement); the measurement's ``tokens`` is set by the caller. Appends the run to the
    estate's history."""
    if placement is None:
        yield None
        return
    from fed_assets.placement import measure

    with measure(
        placement.pool, placement.estimate, history=estate.history_path, label=label
    ) as run:
        yield run


def placement_output_metadata(estate: Any, placement, run, *, before=None) -> dict[str, Any]:
    """Placement, reasons, tags, estimate against actual and the error plot over past runs;
    with ``before``, the estimate made before the read beside the refined one."""
    from fed_assets.placement import History, placement_metadata

    history = History(estate.history_path).records() if estate.history_path else []
    return placement_metadata(placement, run.actual, history=history, before=before)


# ------------------------------------------------------------------ federated training


@dataclass(frozen=True)
class FederatedPlacement:
    """Where each site trains, where the weights are averaged, and what moves between them.

    Attributes:
        sites: site (silo) name → its placement, within the site's own region.
        aggregator: the FedAvg placement, in the aggregator's region.
        traffic: the weight bytes per round and per route (``federated_traffic``).
        weight_bytes: bytes of one set of trainable weights on the wire.
        rounds: FedAvg rounds; site_regions: site name → the region its weights leave.
        run: the whole run as one placement: the aggregator's pool, an estimate whose time is
            the slowest site's (sites train concurrently) plus the aggregation, and whose
            money, energy, CO₂ and water are every site's added up.
    """

    sites: dict[str, Any]
    aggregator: Any
    traffic: Any
    weight_bytes: int
    run: Any
    rounds: int = 0
    site_regions: dict[str, str] = dataclasses.field(default_factory=dict)


def place_federated(
    estate: Any,
    spec: Any,
    sites: Mapping[str, tuple[Any, str]],
    *,
    catalog: Any,
    rounds: int,
    aggregator_region: str | None,
    goal: PlacementGoal | None = None,
) -> FederatedPlacement:
    """Place a federated fine-tune before any site reads a row: each site on a pool in a region
    its own table's policy lets its rows go to (``estate.site_pools``), from the catalog's row
    count; the aggregation (a weighted sum: 2 FLOPs per trainable weight per site per round) on
    a pool in ``aggregator_region`` that every site's weights may go to; the traffic from the
    exact size of the starting model's trainable weights, which holds no data.

    Raises:
        PlacementRefused: a site, or the aggregation, fits no pool.
    """
    from fed_assets.errors import PolicyViolation
    from fed_assets.placement import (
        Placement,
        PlacementRefused,
        Workload,
        choose,
        estimate_inference,
        federated_traffic,
    )
    from fed_assets.residency import check_movement
    from fed_assets.train.fedavg import nbytes
    from fed_assets.train.site import starting_model

    goal = goal or PlacementGoal()
    start = starting_model(spec)
    counted = start.parameters()
    weight_bytes = nbytes(start.trainable_arrays())
    placed = {}
    for name, (silo, table) in sites.items():
        rows = catalog_rows(catalog, silo, table)
        if rows is None:
            raise PlacementRefused(
                f"federated site '{name}' (table '{table}')",
                "neither the catalog snapshot nor the silo's statistics give its row count",
                "refresh the catalog snapshot (`fed-assets catalog refresh`)",
                constraint="size",
                rejected={},
            )
        placed[name] = placement_for_site(
            estate, spec, silo, table, rows=rows, rounds=rounds, counted=counted, goal=goal
        )
    region = aggregator_region or estate.engine_region
    candidates = []
    refused = {}
    for pool in estate.site_pools(region):
        try:
            for silo, table in sites.values():
                check_movement(silo, table, kind="weights", destination_region=pool.region)
        except PolicyViolation as err:
            refused[pool.name] = f"{err.what}: {err.reason}"
            continue
        if pool.region == region:
            candidates.append(pool)
        else:
            refused.setdefault(pool.name, f"not in the aggregator's region {region}")
    aggregation = Workload(
        params=max(1, counted["trainable"]),
        tokens=len(sites) * rounds,
        batch_size=1,
        seq_len=1,
    )
    if not candidates:
        raise PlacementRefused(
            f"FedAvg aggregation in region {region}",
            "no pool in that region may receive every site's weights",
            "add a pool in the aggregator's region (or set aggregator_region to a region with "
            f"one); pools: {refused}",
            constraint="residency",
            rejected=refused,
        )
    aggregator = choose(
        aggregation, candidates, objective=goal.objective, estimator=estimate_inference
    )
    aggregator = dataclasses.replace(aggregator, rejected={**refused, **aggregator.rejected})
    silo_regions = {name: silo.region for name, (silo, _) in sites.items()}
    traffic = federated_traffic(
        weight_bytes, silo_regions, region, rounds, usd_per_gb=estate.usd_per_gb()
    )
    estimate = _whole_run(placed, aggregator.estimate, traffic)
    reasons = (
        f"{rounds} rounds: sites on different pools train concurrently, sites this machine "
        f"stands in for share it ({estimate.seconds:,.2f} s with the aggregation)",
        *(
            f"site {name}: pool {p.pool.name} in {p.pool.region} "
            f"({p.estimate.seconds:,.2f} s, ${p.estimate.footprint.usd:,.4f})"
            for name, p in placed.items()
        ),
        f"aggregation: {aggregator.reasons[0]}",
        f"weights: {weight_bytes:,} bytes a set, {traffic.per_round:,.0f} bytes a round, "
        f"${traffic.usd:,.6f} egress at the estate's link prices",
    )
    run = Placement(
        pool=aggregator.pool,
        estimate=estimate,
        objective=goal.objective,
        reasons=reasons,
        rejected={
            f"{n}/{pool}": why for n, p in placed.items() for pool, why in p.rejected.items()
        },
    )
    return FederatedPlacement(
        sites=placed,
        aggregator=aggregator,
        traffic=traffic,
        weight_bytes=weight_bytes,
        run=run,
        rounds=rounds,
        site_regions=silo_regions,
    )


def placement_for_site(
    estate: Any,
    spec: Any,
    silo: Any,
    table: str,
    *,
    rows: int,
    rounds: int,
    counted: Mapping[str, int],
    goal: PlacementGoal | None = None,
):
    """One federated site's placement: ``rounds`` × ``local_epochs`` over its training split,
    on a pool its rows may go to (its own region always may)."""
    from fed_assets.placement import placement_for_training

    goal = goal or PlacementGoal()
    config = spec.config
    full = spec.method == "full"
    return placement_for_training(
        estate,
        params=counted["total"],
        tokens=training_tokens(rows, config, epochs=rounds * spec.local_epochs),
        method="full" if full else "lora",
        trainable=None if full else counted["trainable"],
        inputs=[(silo, table, spec.columns)],
        batch_size=config.batch_size,
        seq_len=config.max_length,
        n_layer=config.n_layer,
        d_model=config.n_embd,
        n_head=config.n_head,
        vocab=config.vocab_size,
        pools=estate.site_pools(silo.region),
        objective=goal.objective,
        deadline_s=goal.deadline_s,
        budget_usd=goal.budget_usd,
    )


def _whole_run(placed: Mapping[str, Any], aggregation, traffic):
    """One estimate for the federated run (kind ``"federated"``, so calibration of training
    runs leaves it out): the sites' time plus the aggregation, the rest summed. Sites on
    different pools train concurrently (the slowest decides); sites this machine stands in for
    share it, so their times add up."""
    from fed_assets.placement import Footprint
    from fed_assets.placement.detect import LOCAL_POOL

    estimates = [p.estimate for p in placed.values()]
    here = sum(p.estimate.seconds for p in placed.values() if p.pool.name == LOCAL_POOL)
    elsewhere = [p.estimate.seconds for p in placed.values() if p.pool.name != LOCAL_POOL]
    slowest = max(estimates, key=lambda e: e.seconds)
    parts = [*estimates, aggregation]

    def total(field: str) -> float:
        return sum(getattr(e.footprint, field) for e in parts)

    return dataclasses.replace(
        slowest,
        pool=aggregation.pool,
        kind="federated",
        flops=sum(e.flops for e in parts),
        tokens=sum(e.tokens for e in estimates),
        footprint=Footprint(
            seconds=max([here, *elsewhere]) + aggregation.seconds,
            usd=total("usd") + traffic.usd,
            kwh=total("kwh"),
            co2_kg=total("co2_kg"),
            water_l=total("water_l"),
        ),
        notes=(*slowest.notes, "weight transfer time not included (bytes and dollars are)"),
    )


def federated_placement_metadata(
    estate: Any, placed: FederatedPlacement, run, routes: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The whole run's placement metadata (as a single model's), plus a table of each site's
    placement and one of the weight bytes estimated against those that moved, per route."""
    from fed_assets import metadata as md

    metadata = placement_output_metadata(estate, placed.run, run)
    metadata["placement/sites"] = md.table(
        [
            {
                "site": name,
                "pool": p.pool.name,
                "region": p.pool.region,
                "estimated s": round(p.estimate.seconds, 3),
                "estimated usd": round(p.estimate.footprint.usd, 6),
                "estimated kWh": round(p.estimate.footprint.kwh, 6),
                "estimated tokens": p.estimate.tokens,
            }
            for name, p in placed.sites.items()
        ]
    )
    per_site = 2 * placed.weight_bytes * placed.rounds  # down and up, every round
    moved: dict[str, int] = {}
    for route in routes:
        if route["kind"] == "weights":
            moved[route["silo"]] = moved.get(route["silo"], 0) + int(route.get("bytes") or 0)
    region = placed.aggregator.pool.region
    metadata["placement/weight traffic"] = md.table(
        [
            {
                "site": name,
                "route": f"{site_region} ⇄ {region}",
                "estimated bytes": per_site,
                "moved bytes": moved.get(name, 0),
                "estimated usd": round(
                    per_site / 2 / 1e9 * _two_way_price(estate, site_region, region), 8
                ),
            }
            for name, site_region in placed.site_regions.items()
        ]
    )
    metadata["placement/weight bytes per round"] = int(placed.traffic.per_round)
    metadata["placement/aggregator"] = (
        f"{placed.aggregator.pool.name} in {placed.aggregator.pool.region}"
    )
    return metadata


def _two_way_price(estate: Any, a: str, b: str) -> float:
    if a == b:
        return 0.0
    prices = estate.usd_per_gb()
    return prices.get((a, b), 0.0) + prices.get((b, a), 0.0)
