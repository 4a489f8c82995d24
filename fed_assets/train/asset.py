"""``fine_tuned_model``: a model asset trained on a silo table or a federated asset's result.

The input is read through the read-in-place IO manager asking only for the columns the model
needs (a silo table) or loaded from the results store (a federated asset). Moving those rows to
where training runs passes the residency check when the code location loads, so a model placed
where its data may not go is refused before a row moves. The asset is tagged
``fed_assets/role=model`` and stored by the model IO manager.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import dagster as dg

from fed_assets.catalog import Catalog, read_observation, record_read, table_asset_key
from fed_assets.errors import ConfigurationError
from fed_assets.residency import check_movement
from fed_assets.train.config import TrainingConfig
from fed_assets.train.metadata import route_dict
from fed_assets.train.placing import PlacementGoal, TrainingRequest, measured_training
from fed_assets.train.render import template_columns

# Resource key of the model IO manager in Definitions built by fed_assets.build_definitions.
MODEL_IO_MANAGER_KEY = "model_io_manager"
# The tag every model asset carries: sensors and placement select models by it.
ROLE_TAG = "fed_assets/role"
MODEL_KINDS = {"pytorch"}
# Dagster concurrency pool every training step runs in (limits simultaneous training runs).
TRAINING_POOL = "training"


@dataclass(frozen=True)
class Source:
    """Where a model's training data comes from.

    Attributes:
        key: the input asset.
        tables: (silo, table) read, directly or by the federated query.
        sql: the federated query, when the input is a federated asset.
        engine_region: where a federated asset's result lives.
    """

    key: dg.AssetKey
    tables: tuple[tuple[str, str], ...]
    sql: str | None = None
    engine_region: str | None = None

    @property
    def is_silo_table(self) -> bool:
        return self.sql is None


@dataclass(frozen=True)
class FineTuneArgs:
    """What a model factory passes ``fine_tune`` besides the rows, the config and the logger."""

    task: str
    label: str | None
    text: str | None
    template: str | None
    features: Sequence[str] | None
    base_model: str | None
    method: str

    def measured(self, context, table, config: TrainingConfig, estate, placement, *, label: str):
        """``fine_tune`` of ``table`` in the asset's step, checkpointing in its folder (unless
        ``config`` names one) and measured on ``placement``'s pool (``measured_training``):
        returns the model and the measurement."""
        from fed_assets.train.fine_tune import fine_tune

        if config.checkpoint_dir is None:
            config = config.replace(checkpoint_dir=checkpoint_folder(context))
        arguments = {f.name: getattr(self, f.name) for f in fields(self)}
        return measured_training(
            estate,
            placement,
            label=label,
            train=lambda: fine_tune(table, **arguments, config=config, logger=context.log),
        )


def fine_tuned_model(
    name: str,
    *,
    dataset: str | dg.AssetsDefinition,
    task: str,
    catalog: Catalog,
    label: str | None = None,
    text: str | None = None,
    template: str | None = None,
    features: Sequence[str] | None = None,
    base_model: str | None = None,
    method: str = "lora",
    config: TrainingConfig | None = None,
    train_region: str | None = None,
    group_name: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    op_tags: Mapping[str, Any] | None = None,
    pool: str | None = TRAINING_POOL,
    compute: str | None = None,
    goal: PlacementGoal | None = None,
) -> dg.AssetsDefinition:
    """A Dagster asset whose value is ``fine_tune(...)`` of ``dataset``.

    Args:
        dataset: ``"silo.table"`` (read in place) or a federated asset (``federated_asset``).
        catalog: the silos (their regions and policies are checked here, at load).
        train_region: where training runs; ``None`` trains beside the data (the silo's region,
            or the federated asset's engine region).
        tags, op_tags: placement (e.g. from ``resources.compute``): merged with the role tag.
        pool: the Dagster concurrency pool the training step runs in.
        compute: the resource key of a ``resources.compute.ComputeEstate``: the run then trains
            on the pool the estate chooses (cheapest that fits memory, deadline, budget and the
            inputs' residency), is measured, and records placement, reasons and estimate
            against actual (``fed_assets.train.placing``). ``None``: no placement.
        goal: the placement's objective, deadline and budget (``PlacementGoal``).
        Other arguments: as ``fed_assets.fine_tune``.
    """
    source = resolve_source(dataset, catalog)
    config = config or TrainingConfig()
    tune = FineTuneArgs(task, label, text, template, features, base_model, method)
    columns = needed_columns(task, label, text, template, features)
    region = train_region or (source.engine_region if source.sql else None)
    routes = [route_dict(r) for r in check_reads(source, catalog, columns, region)]
    metadata = {"columns": columns} if columns and source.is_silo_table else {}
    silos = sorted({s for s, _ in source.tables})

    # With a compute estate, a silo table is read by the model's own step after the placement
    # is chosen from the catalog's row count, so a refused placement reads no row; otherwise
    # (and for a federated asset's result, already out of its silos) the IO manager loads it.
    deferred = compute is not None and source.is_silo_table
    ins = {} if deferred else {"data": dg.AssetIn(key=source.key, metadata=metadata)}
    decorate = dg.asset(
        name=name,
        ins=ins,
        deps=[source.key] if deferred else None,
        group_name=group_name,
        io_manager_key=MODEL_IO_MANAGER_KEY,
        required_resource_keys=set(silos) | ({compute} if compute else set()),
        kinds=MODEL_KINDS | {catalog.silos[s].kind for s in silos},
        tags={ROLE_TAG: "model", **(tags or {})},
        op_tags=dict(op_tags or {}),
        pool=pool,
        description=description or f"{task} model fine-tuned on {source.key.to_user_string()}.",
        metadata={
            "fed/task": task,
            "fed/method": method,
            "fed/base_model": base_model or "offline",
        },
    )

    def _train(context, data):
        from fed_assets.train.data import as_table

        estate = getattr(context.resources, compute) if compute else None
        request = before = placement = None
        if estate is not None:
            request = TrainingRequest(
                estate,
                config,
                method,
                inputs=tuple(
                    (catalog.silos[s], t, columns if source.is_silo_table else ())
                    for s, t in source.tables
                ),
                goal=goal,
            )
        read_sql = None
        if data is None:  # deferred: placed from the catalog's count, then read in place
            before = request.before_read(catalog)
            ((silo_name, table_name),) = source.tables
            silo = getattr(context.resources, silo_name)
            version = silo.version(table_name)  # before the rows, as the silo IO manager does
            read_sql = silo.read_sql(table_name, columns=columns)
            data = silo.scan(read_sql).read_all()
            context.log.info(f"read {data.num_rows:,} rows of {silo_name}.{table_name} in place")
            observed = {"rows read": data.num_rows, "bytes read": data.nbytes}
            record_read(
                context.op_execution_context._step_execution_context,  # noqa: SLF001 - provenance
                read_observation(source.key, version, observed),
            )
        table = as_table(data)
        if columns:
            table = table.select([c for c in columns if c in table.column_names])
        if request is not None:
            classes = len(set(table.column(label).to_pylist())) if label else 0
            placement = request.refine(before, rows=table.num_rows, classes=classes)
            context.log.info(f"training placed on pool {placement.pool.name}: {placement.reasons}")
        model, run = tune.measured(context, table, config, estate, placement, label=name)
        model.lineage = lineage(context, source, table, columns)
        if placement is not None:  # the rows went where the pool is: that move is checked too
            placed = check_reads(source, catalog, columns, placement.pool.region)
            routes_now = [route_dict(r) for r in placed]
        else:
            routes_now = routes
        moved = [{**r, "rows": table.num_rows, "bytes": table.nbytes} for r in routes_now]
        metadata = output_metadata(model, table, moved)
        if placement is not None:
            from fed_assets.train.placing import placement_output_metadata

            metadata.update(placement_output_metadata(estate, placement, run, before=before))
        if read_sql is not None:
            metadata["sql pushed to silo"] = dg.MetadataValue.md(f"```sql\n{read_sql}\n```")
        return dg.Output(model, metadata=metadata)

    if deferred:

        @decorate
        def _model(context):  # no annotations: postponed ones are strings Dagster refuses
            return _train(context, None)

    else:

        @decorate
        def _model(context, data):  # no annotations: postponed ones are strings Dagster refuses
            return _train(context, data)

    return _model


def output_metadata(model, table, routes) -> dict[str, Any]:
    from fed_assets.train.metadata import model_metadata, movement_table

    metadata = model_metadata(model, table)
    if routes:
        metadata["residency audit"] = movement_table(routes)
    return metadata


def resolve_source(dataset: str | dg.AssetsDefinition, catalog: Catalog) -> Source:
    """The input asset and the silo tables behind ``dataset``."""
    if isinstance(dataset, dg.AssetsDefinition):
        spec = next(iter(dataset.specs))
        sql = (spec.metadata or {}).get("fed/sql")
        tables = tuple(
            (k.path[0], k.path[1])
            for k in dataset.dependency_keys
            if len(k.path) == 2 and k.path[0] in catalog.silos
        )
        text = getattr(sql, "md_str", None) or getattr(sql, "text", None) or str(sql or "")
        region = (spec.metadata or {}).get("fed/engine_region")
        return Source(
            spec.key,
            tables,
            text.strip().removeprefix("```sql").removesuffix("```").strip(),
            None if region in (None, "unset") else region,
        )
    silo, _, table = str(dataset).partition(".")
    if silo not in catalog.silos or not table:
        raise ConfigurationError(
            f"dataset '{dataset}'",
            "it is neither a federated asset nor a 'silo.table' of the catalog",
            f"name a table of one of the silos {', '.join(catalog.silos)} or pass the asset",
        )
    return Source(table_asset_key(silo, table), ((silo, table),))


def needed_columns(task, label, text, template, features) -> list[str] | None:
    """The columns training reads (``None``: every column, when no features are named)."""
    if task == "causal_lm":
        return [text] if text else None
    if template is not None:
        return [label, *template_columns(template)]
    if features is not None:
        return [label, *features]
    return None


def check_reads(source: Source, catalog: Catalog, columns, region: str | None) -> list:
    """Routes for the training rows, checked against each source table's policy."""
    routes = []
    for silo_name, table in source.tables:
        silo = catalog.silos[silo_name]
        destination = region or (silo.region if source.is_silo_table else None)
        moved = columns if source.is_silo_table else ()
        routes.append(
            check_movement(silo, table, moved or (), kind="rows", destination_region=destination)
        )
    return routes


def lineage(context, source: Source, table, columns) -> dict[str, Any]:
    """Which silo tables at which version, rows, columns and the SQL (for the model card)."""
    sources = []
    for silo_name, name in source.tables:
        silo = getattr(context.resources, silo_name)
        try:
            version = silo.version(name).fingerprint
        except Exception as err:  # noqa: BLE001 - a version we cannot read is recorded as such
            version = f"unknown ({type(err).__name__})"
        sources.append(
            {
                "silo": silo_name,
                "table": name,
                "version": version,
                "columns": list(columns or []) if source.is_silo_table else [],
            }
        )
    return {
        "sources": sources,
        "rows": table.num_rows,
        "columns": table.column_names,
        "sql": source.sql,
        "input asset": source.key.to_user_string(),
    }


def checkpoint_folder(context) -> str:
    """Where a model asset's checkpoints live, so a retried run resumes (per partition)."""
    base = os.environ.get("DAGSTER_HOME") or tempfile.gettempdir()
    parts = [base, "fed-checkpoints", *context.asset_key.path]
    if context.has_partition_key:
        parts.append(context.partition_key)
    return os.path.join(*parts)
