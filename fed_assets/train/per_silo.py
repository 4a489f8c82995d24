"""Per-silo models: one partition per silo, each trained only on its own silo's table, in place.

Partitions are independent runs; launched together (a backfill, or several runs) they train at
the same time, each step in the ``training`` concurrency pool, which bounds how many run at once
(``concurrency: pools:`` in dagster.yaml). The training rows never leave their silo's region.

Given a ``compute`` resource, each partition is placed (``fed_assets.train.placing``) on a pool
its own silo's policy lets its rows go to, from the catalog's row count and before a row is
read, so a refused placement reads nothing; the run is measured and recorded beside the estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from fed_assets.catalog import Catalog, table_asset_key
from fed_assets.residency import check_movement
from fed_assets.train.asset import (
    MODEL_IO_MANAGER_KEY,
    MODEL_KINDS,
    ROLE_TAG,
    TRAINING_POOL,
    FineTuneArgs,
    Source,
    lineage,
    needed_columns,
    output_metadata,
    route_dict,
)
from fed_assets.train.config import TrainingConfig
from fed_assets.train.placing import (
    PlacementGoal,
    TrainingRequest,
    placement_output_metadata,
)


def per_silo_model(
    name: str,
    *,
    datasets: Mapping[str, str],
    task: str,
    catalog: Catalog,
    label: str | None = None,
    text: str | None = None,
    template: str | None = None,
    features: Sequence[str] | None = None,
    base_model: str | None = None,
    method: str = "lora",
    config: TrainingConfig | None = None,
    group_name: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    op_tags: Mapping[str, Any] | None = None,
    pool: str | None = TRAINING_POOL,
    compute: str | None = None,
    goal: PlacementGoal | None = None,
) -> dg.AssetsDefinition:
    """A model asset partitioned by silo: ``datasets`` maps each silo name to its table.

    Each partition reads ``columns`` of its own table through the silo (pushed down, read in
    place) and trains in the silo's region; the residency check runs at load for every silo.

    Args:
        compute: the resource key of a ``resources.compute.ComputeEstate``: each partition is
            then placed on the cheapest pool (by ``goal``) within its silo's residency
            (``estate.site_pools(silo region)``), before its rows are read; measured; and its
            placement, reasons and estimate against actual recorded. ``None``: no placement.
        goal: the placement's objective, deadline and budget.
    """
    config = config or TrainingConfig()
    tune = FineTuneArgs(task, label, text, template, features, base_model, method)
    columns = needed_columns(task, label, text, template, features)
    for silo_name, table in datasets.items():
        check_movement(
            catalog.silos[silo_name],
            table,
            columns or (),
            kind="rows",
            destination_region=catalog.silos[silo_name].region,
        )
    silos = sorted(datasets)

    @dg.asset(
        name=name,
        partitions_def=dg.StaticPartitionsDefinition(silos),
        deps=[table_asset_key(s, datasets[s]) for s in silos],
        group_name=group_name,
        io_manager_key=MODEL_IO_MANAGER_KEY,
        required_resource_keys=set(silos) | ({compute} if compute else set()),
        kinds=MODEL_KINDS | {catalog.silos[s].kind for s in silos},
        tags={ROLE_TAG: "model", **(tags or {})},
        op_tags=dict(op_tags or {}),
        pool=pool,
        description=description
        or f"{task} model per silo ({', '.join(silos)}), each on its own data.",
        metadata={"fed/task": task, "fed/method": method, "fed/per_silo": ", ".join(silos)},
    )
    def _per_silo(context):  # no annotations: postponed ones are strings Dagster refuses
        silo_name = context.partition_key
        silo, table_name = getattr(context.resources, silo_name), datasets[silo_name]
        route = check_movement(
            silo, table_name, columns or (), kind="rows", destination_region=silo.region
        )
        estate = getattr(context.resources, compute) if compute else None
        request = before = placement = None
        if estate is not None:  # chosen before a row is read: a refusal reads nothing
            request = TrainingRequest(
                estate,
                config,
                method,
                inputs=((silo, table_name, columns or ()),),
                pools=tuple(estate.site_pools(silo.region)),
                goal=goal,
            )
            before = request.before_read(catalog)
        sql = silo.read_sql(table_name, columns=columns)
        table = silo.scan(sql).read_all()
        context.log.info(f"read {table.num_rows:,} rows of {silo_name}.{table_name} in place")
        if request is not None:
            classes = len(set(table.column(label).to_pylist())) if label else 0
            placement = request.refine(before, rows=table.num_rows, classes=classes)
            context.log.info(
                f"partition {silo_name} placed on pool {placement.pool.name} "
                f"({placement.pool.region}): {placement.reasons}"
            )
        run_label = f"{name}[{silo_name}]"
        model, run = tune.measured(context, table, config, estate, placement, label=run_label)
        source = Source(table_asset_key(silo_name, table_name), ((silo_name, table_name),))
        model.lineage = lineage(context, source, table, columns)
        moved = [{**route_dict(route), "rows": table.num_rows, "bytes": table.nbytes}]
        metadata = output_metadata(model, table, moved)
        metadata["sql pushed to silo"] = dg.MetadataValue.md(f"```sql\n{sql}\n```")
        if placement is not None:
            metadata.update(placement_output_metadata(estate, placement, run, before=before))
        return dg.Output(model, metadata=metadata)

    return _per_silo
