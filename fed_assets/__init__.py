"""fed-assets: federated queries over data silos, and models trained on them, as Dagster assets."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fed_assets.catalog import Catalog, table_asset_key
    from fed_assets.config import SILO_KINDS, silo_from_config, silos_from_yaml
    from fed_assets.definitions import build_definitions
    from fed_assets.errors import (
        ConfigurationError,
        CorruptDataError,
        EmptyTableError,
        FedAssetsError,
        QuerySyntaxError,
        ReadOnlyViolation,
        SchemaDriftError,
        SiloAuthError,
        SiloQueryError,
        SiloUnreachableError,
        UnknownColumnError,
        UnknownSiloError,
        UnknownTableError,
    )
    from fed_assets.quality import DatasetSuite, drift_check, quality_check
    from fed_assets.query import PolicyViolation, QueryResult, explain, query
    from fed_assets.query.asset import federated_asset
    from fed_assets.silo import (
        Capabilities,
        ColumnStats,
        Silo,
        SiloPolicy,
        SiloResource,
        TableStats,
        TableVersion,
    )
    from io_managers.results import ParquetResultsIOManager
    from io_managers.silo import SiloIOManager, silo_io_manager
    from resources.silos.bigquery import BigQuerySilo
    from resources.silos.delta import DeltaSilo
    from resources.silos.duckdb import DuckDBSilo
    from resources.silos.parquet import ParquetSilo
    from resources.silos.postgres import PostgresSilo
    from resources.silos.snowflake import SnowflakeSilo
    from resources.silos.sqlite import SQLiteSilo
    from sensors.schedules import dataset_refresh_schedule, model_retrain_schedule
    from sensors.source_change import source_change_sensor

# The public API, name → "module:attribute", imported on first use: `import fed_assets` (and so
# the CLI's --help) stays fast, each silo kind pulls in only its own driver, and no module of the
# package depends on the package's __init__ having run (no import cycles through it).
_LAZY = {
    **{name: f"fed_assets.catalog:{name}" for name in ("Catalog", "table_asset_key")},
    **{
        name: f"fed_assets.config:{name}"
        for name in ("SILO_KINDS", "silo_from_config", "silos_from_yaml")
    },
    "build_definitions": "fed_assets.definitions:build_definitions",
    **{
        name: f"fed_assets.errors:{name}"
        for name in (
            "ConfigurationError",
            "CorruptDataError",
            "EmptyTableError",
            "FedAssetsError",
            "QuerySyntaxError",
            "ReadOnlyViolation",
            "SchemaDriftError",
            "SiloAuthError",
            "SiloQueryError",
            "SiloUnreachableError",
            "UnknownColumnError",
            "UnknownSiloError",
            "UnknownTableError",
        )
    },
    **{
        name: f"fed_assets.query:{name}"
        for name in ("PolicyViolation", "QueryResult", "explain", "query")
    },
    "federated_asset": "fed_assets.query.asset:federated_asset",
    **{
        name: f"fed_assets.silo:{name}"
        for name in (
            "Capabilities",
            "ColumnStats",
            "Silo",
            "SiloPolicy",
            "SiloResource",
            "TableStats",
            "TableVersion",
        )
    },
    # silo kinds (the same table as fed_assets.config.SILO_KINDS)
    "BigQuerySilo": "resources.silos.bigquery:BigQuerySilo",
    "DeltaSilo": "resources.silos.delta:DeltaSilo",
    "DuckDBSilo": "resources.silos.duckdb:DuckDBSilo",
    "ParquetSilo": "resources.silos.parquet:ParquetSilo",
    "PostgresSilo": "resources.silos.postgres:PostgresSilo",
    "SQLiteSilo": "resources.silos.sqlite:SQLiteSilo",
    "SnowflakeSilo": "resources.silos.snowflake:SnowflakeSilo",
    "ParquetResultsIOManager": "io_managers.results:ParquetResultsIOManager",
    "SiloIOManager": "io_managers.silo:SiloIOManager",
    "silo_io_manager": "io_managers.silo:silo_io_manager",
    # compute placement (fed_assets.placement; the estate resource in resources/compute.py)
    "ComputeEstate": "resources.compute:ComputeEstate",
    "ComputePool": "fed_assets.placement.pools:ComputePool",
    "Placement": "fed_assets.placement.choice:Placement",
    "PlacementRefused": "fed_assets.placement.errors:PlacementRefused",
    "PoolConfigError": "fed_assets.placement.errors:PoolConfigError",
    "Workload": "fed_assets.placement.estimate:Workload",
    "choose": "fed_assets.placement.choice:choose",
    "choose_engine_region": "fed_assets.placement.engine_region:choose_engine_region",
    "estimate_training": "fed_assets.placement.estimate:estimate_training",
    "estimate_inference": "fed_assets.placement.estimate:estimate_inference",
    "measure": "fed_assets.placement.measuring:measure",
    "placement_for_training": "fed_assets.placement.training:placement_for_training",
    "placement_metadata": "fed_assets.placement.report:placement_metadata",
    # retraining and quality gates (great-expectations is imported on the first validation)
    "DatasetSuite": "fed_assets.quality.suite:DatasetSuite",
    "quality_check": "fed_assets.quality.checks:quality_check",
    "drift_check": "fed_assets.quality.drift:drift_check",
    "source_change_sensor": "sensors.source_change:source_change_sensor",
    "dataset_refresh_schedule": "sensors.schedules:dataset_refresh_schedule",
    "model_retrain_schedule": "sensors.schedules:model_retrain_schedule",
    # training pulls in torch and transformers
    "fine_tune": "fed_assets.train.fine_tune:fine_tune",
    "FineTunedModel": "fed_assets.train.model:FineTunedModel",
    "TrainingConfig": "fed_assets.train.config:TrainingConfig",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name].split(":")
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later look-ups skip __getattr__
        return value
    raise AttributeError(f"module 'fed_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Capabilities",
    "Catalog",
    "ColumnStats",
    "ConfigurationError",
    "CorruptDataError",
    "EmptyTableError",
    "FedAssetsError",
    "PolicyViolation",
    "QueryResult",
    "QuerySyntaxError",
    "ReadOnlyViolation",
    "SILO_KINDS",
    "Silo",
    "SiloAuthError",
    "SiloPolicy",
    "SchemaDriftError",
    "SiloQueryError",
    "SiloResource",
    "SiloUnreachableError",
    "TableStats",
    "TableVersion",
    "UnknownColumnError",
    "UnknownSiloError",
    "UnknownTableError",
    "build_definitions",
    "explain",
    "federated_asset",
    "query",
    "silo_from_config",
    "silos_from_yaml",
    "table_asset_key",
    "BigQuerySilo",
    "DeltaSilo",
    "DuckDBSilo",
    "FineTunedModel",
    "ParquetResultsIOManager",
    "ParquetSilo",
    "PostgresSilo",
    "SQLiteSilo",
    "SiloIOManager",
    "SnowflakeSilo",
    "TrainingConfig",
    "fine_tune",
    "silo_io_manager",
    "ComputeEstate",
    "ComputePool",
    "Placement",
    "PlacementRefused",
    "PoolConfigError",
    "Workload",
    "choose",
    "choose_engine_region",
    "estimate_inference",
    "estimate_training",
    "measure",
    "placement_for_training",
    "placement_metadata",
    "DatasetSuite",
    "dataset_refresh_schedule",
    "drift_check",
    "model_retrain_schedule",
    "quality_check",
    "source_change_sensor",
]
