"""Per-silo models: one partition per silo, each trained only on its own silo's table, in place.

Partitions are independent runs; launched together (a backfill, or several runs) they train at
the same time, each step in the ``training`` concurrency pool, which bounds how many run at once
(``concurrency: pools:`` in dagster.yaml). The training rows never leave their silo's region.
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
    Source,
    checkpoint_folder,
    lineage,
    needed_columns,
    output_metadata,
    route_dict,
)
from fed_assets.train.config import TrainingConfig


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
) -> dg.AssetsDefinition:
    """A model asset partitioned by silo: ``datasets`` maps each silo name to its table.

    Each partition reads ``columns`` of its own table through the silo (pushed down, read in
    place) and trains in the silo's region; the residency check runs at load for every silo.
    """
    config = config or TrainingConfig()
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
        required_resource_keys=set(silos),
        kinds=MODEL_KINDS | {catalog.silos[s].kind for s in silos},
        tags={ROLE_TAG: "model", **(tags or {})},
        op_tags=dict(op_tags or {}),
        pool=pool,
        description=description
        or f"{task} model per silo ({', '.join(silos)}), each on its own data.",
        metadata={"fed/task": task, "fed/method": method, "fed/per_silo": ", ".join(silos)},
    )
    def _per_silo(context):  # no annotations: postponed ones are strings Dagster refuses
        from fed_assets.train.fine_tune import fine_tune

        silo_name = context.partition_key
        silo, table_name = getattr(context.resources, silo_name), datasets[silo_name]
        route = check_movement(
            silo, table_name, columns or (), kind="rows", destination_region=silo.region
        )
        sql = silo.read_sql(table_name, columns=columns)
        table = silo.scan(sql).read_all()
        context.log.info(f"read {table.num_rows:,} rows of {silo_name}.{table_name} in place")
        model = fine_tune(
            table,
            task=task,
            label=label,
            text=text,
            template=template,
            features=features,
            base_model=base_model,
            method=method,
            config=config
            if config.checkpoint_dir
            else config.replace(checkpoint_dir=checkpoint_folder(context)),
            logger=context.log,
        )
        source = Source(table_asset_key(silo_name, table_name), ((silo_name, table_name),))
        model.lineage = lineage(context, source, table, columns)
        moved = [{**route_dict(route), "rows": table.num_rows, "bytes": table.nbytes}]
        metadata = output_metadata(model, table, moved)
        metadata["sql pushed to silo"] = dg.MetadataValue.md(f"```sql\n{sql}\n```")
        return dg.Output(model, metadata=metadata)

    return _per_silo
