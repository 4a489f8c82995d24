"""Assemble a Dagster ``Definitions`` from silos: source assets, IO managers, catalog refresh."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from fed_assets.catalog import Catalog, silo_io_manager_key
from fed_assets.train.asset import MODEL_IO_MANAGER_KEY
from io_managers.model import ModelIOManager
from io_managers.results import ParquetResultsIOManager
from io_managers.silo import silo_io_manager

# The job that observes every silo table (records version() as the data version).
OBSERVE_JOB = "observe_silos"


def refresh_catalog_job(catalog: Catalog) -> dg.JobDefinition:
    """A job that re-reads every silo's tables and schemas into the catalog snapshot.

    The next code-location reload shows new tables and columns.
    """

    @dg.op(required_resource_keys=set(catalog.silos))
    def refresh_catalog(context) -> None:
        live = Catalog(
            {n: getattr(context.resources, n) for n in catalog.silos}, catalog.snapshot_path
        )
        outcome = live.refresh()
        failed = {n: r for n, r in outcome.items() if r != "ok"}
        for name, result in outcome.items():
            context.log.info(f"silo {name}: {result}")
        if failed:
            raise dg.Failure(
                description=f"{len(failed)} silo(s) could not be read; their old entries are kept",
                metadata=failed,
            )

    @dg.job(description="Refresh the catalog snapshot of every silo's tables and schemas.")
    def refresh_catalog_snapshot():
        refresh_catalog()

    return refresh_catalog_snapshot


def build_definitions(
    catalog: Catalog,
    *,
    results_base_path: str,
    assets: Sequence[dg.AssetsDefinition] = (),
    asset_checks: Sequence[dg.AssetChecksDefinition] = (),
    jobs: Sequence[dg.JobDefinition] = (),
    schedules: Sequence[dg.ScheduleDefinition] = (),
    sensors: Sequence[dg.SensorDefinition] = (),
) -> dg.Definitions:
    """Definitions with one source asset per silo table plus ``assets`` that build on them.

    Resources: each silo under its own name, one read-in-place IO manager per silo
    (``silo_io_manager__<silo>``, requiring only that silo), the default ``io_manager``
    (Parquet results store under ``results_base_path``) and ``model_io_manager`` (fine-tuned
    models, versioned, under ``results_base_path/models``). A table an asset reads from a silo
    that is down (and was never snapshotted) gets a placeholder source, so the rest loads.
    ``asset_checks`` guard the assets (e.g. ``fed_assets.quality`` gates).
    """
    sources = catalog.source_assets()
    defined = {k for a in [*sources, *assets] for k in a.keys}
    wanted = {k for a in assets for k in a.dependency_keys} - defined
    placeholders = catalog.placeholder_specs(sorted(wanted, key=lambda k: k.to_string()))
    observe = dg.define_asset_job(
        OBSERVE_JOB,
        selection=dg.AssetSelection.assets(*sources),
        description="Record every silo table's change fingerprint as its data version.",
    )
    return dg.Definitions(
        assets=[*sources, *placeholders, *assets],
        asset_checks=list(asset_checks),
        jobs=[refresh_catalog_job(catalog), observe, *jobs],
        schedules=list(schedules),
        sensors=list(sensors),
        resources={
            **catalog.silos,
            # One reader per silo: a step requires (and starts) only the silos it reads.
            **{silo_io_manager_key(n): silo_io_manager([n]) for n in catalog.silos},
            "io_manager": ParquetResultsIOManager(base_path=results_base_path),
            MODEL_IO_MANAGER_KEY: ModelIOManager(
                base_path=f"{results_base_path.rstrip('/')}/models"
            ),
        },
    )
