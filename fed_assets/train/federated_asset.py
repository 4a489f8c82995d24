"""``federated_model``: one model trained across silos by FedAvg, where only weights move.

Embedded by default (one local process per site); ``runtime="flower"`` runs the same sites
under Flower's deployment runtime (a SuperLink and one SuperNode per site on this machine).
The metadata shows the weight bytes moved per route and zero raw rows. Given a ``compute``
resource, each site is placed within its own region and the aggregation within the aggregator's,
before any site reads a row (``fed_assets.train.placing.place_federated``); the run is measured
beside the estimate, and the weight bytes estimated per route beside those that moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from fed_assets.catalog import Catalog, table_asset_key
from fed_assets.profile import PROFILE_METADATA_KEY
from fed_assets.residency import check_movement
from fed_assets.train.asset import MODEL_IO_MANAGER_KEY, MODEL_KINDS, ROLE_TAG, TRAINING_POOL
from fed_assets.train.config import TrainingConfig
from fed_assets.train.placing import (
    PlacementGoal,
    federated_placement_metadata,
    place_federated,
    placed_run,
)
from fed_assets.train.site import FederationSpec

# Federated runtimes: local processes, or Flower's SuperLink/SuperNodes.
RUNTIMES = ("embedded", "flower")


def federated_model(
    name: str,
    *,
    datasets: Mapping[str, str],
    catalog: Catalog,
    label: str,
    features: Sequence[str],
    classes: Sequence[Any] = (False, True),
    rounds: int = 3,
    local_epochs: float = 1.0,
    aggregator_region: str | None = None,
    method: str = "lora",
    config: TrainingConfig | None = None,
    template: str | None = None,
    runtime: str = "embedded",
    group_name: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    op_tags: Mapping[str, Any] | None = None,
    pool: str | None = TRAINING_POOL,
    compute: str | None = None,
    goal: PlacementGoal | None = None,
) -> dg.AssetsDefinition:
    """A classifier trained by FedAvg over ``datasets`` (silo → table); rows stay in place.

    ``classes`` are the label's values (agreed up front: they are not read from the data).
    Weights going to ``aggregator_region`` are checked for every silo when the code loads.

    Args:
        compute: the resource key of a ``resources.compute.ComputeEstate``: each site's local
            training is then placed within its own region, the aggregation within
            ``aggregator_region``, from the catalog's row counts before a site reads a row;
            the run is measured, and placement, reasons, estimate against actual and the
            weight bytes per route (estimated and moved) recorded. ``None``: no placement.
        goal: the placement's objective, deadline and budget.
    """
    if runtime not in RUNTIMES:
        from fed_assets.train.errors import ConfigFieldError

        raise ConfigFieldError("runtime", f"{runtime!r} is not a runtime", f"use one of {RUNTIMES}")
    spec = FederationSpec(
        features=tuple(features),
        label=label,
        classes=tuple(classes),
        config=(config or TrainingConfig()).replace(numbers="digits"),
        method=method,
        template=template,
        local_epochs=local_epochs,
    )
    for silo_name, table in datasets.items():
        silo = catalog.silos[silo_name]
        check_movement(silo, table, spec.columns, kind="rows", destination_region=silo.region)
        check_movement(silo, table, kind="weights", destination_region=aggregator_region)
    silos = sorted(datasets)

    @dg.asset(
        name=name,
        deps=[table_asset_key(s, datasets[s]) for s in silos],
        group_name=group_name,
        io_manager_key=MODEL_IO_MANAGER_KEY,
        required_resource_keys=set(silos) | ({compute} if compute else set()),
        kinds=MODEL_KINDS | {"flower" if runtime == "flower" else "python"},
        tags={ROLE_TAG: "model", **(tags or {})},
        op_tags=dict(op_tags or {}),
        pool=pool,
        description=description
        or f"Federated classifier (FedAvg, {rounds} rounds) over {', '.join(silos)}; only weights move.",
        metadata={
            "fed/task": spec.task,
            "fed/method": method,
            "fed/federated": ", ".join(silos),
            "fed/runtime": runtime,
        },
    )
    def _federated_model(context):  # no annotations: postponed ones are strings Dagster refuses
        from fed_assets.train.metadata import model_metadata, movement_table

        sites = {s: (getattr(context.resources, s), datasets[s]) for s in silos}
        estate = getattr(context.resources, compute) if compute else None
        placed = None
        if estate is not None:  # before any site reads a row: a refusal reads nothing
            placed = place_federated(
                estate,
                spec,
                sites,
                catalog=catalog,
                rounds=rounds,
                aggregator_region=aggregator_region,
                goal=goal,
            )
            context.log.info(f"federated training placed: {placed.run.reasons}")
        if runtime == "flower":
            from fed_assets.train.flower import train_with_flower as train
        else:
            from fed_assets.train.federated import train_federated as train
        with placed_run(estate, placed and placed.run, label=name) as run:
            result = train(
                spec, sites, rounds=rounds, aggregator_region=aggregator_region, logger=context.log
            )
            if run is not None:  # the rows each site trained on, every round, padded
                run.tokens = int(
                    result.model.training["rows trained"]
                    * rounds
                    * local_epochs
                    * spec.config.max_length
                )
        model = result.model
        model.lineage = {
            "sources": [
                {
                    "silo": s,
                    "table": t,
                    "version": silo.version(t).fingerprint,
                    "columns": spec.columns,
                }
                for s, (silo, t) in sites.items()
            ],
            "federation": {
                "rounds": rounds,
                "runtime": runtime,
                "aggregator region": aggregator_region or "engine",
            },
            "rows": model.training["rows trained"],
            "columns": spec.columns,
        }
        import pyarrow as pa

        metadata = model_metadata(model, pa.table({c: [] for c in spec.columns}))
        metadata.pop("training curve")  # FedAvg has no single loss curve
        # No profile of the training rows: they never come together (an export: none silo
        # may not even send aggregates), so the drift check has nothing central to compare.
        metadata.pop(PROFILE_METADATA_KEY)
        metadata["residency audit"] = movement_table(result.routes)
        metadata["raw rows moved"] = result.rows_moved
        metadata["weight bytes moved"] = result.weight_bytes
        for route in result.routes:
            if route["kind"] == "weights":
                metadata[
                    f"weight bytes/{route['silo']}: {route['source_region']} → {route['destination_region']}"
                ] = route["bytes"]
        metadata["per-site held-out metrics"] = dg.MetadataValue.json(result.site_metrics)
        if placed is not None:
            metadata.update(federated_placement_metadata(estate, placed, run, result.routes))
        return dg.Output(model, metadata=metadata)

    return _federated_model
