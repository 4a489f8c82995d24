"""fed-assets: federated queries over data silos, and models trained on them, as Dagster assets."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    SiloAuthError,
    SiloQueryError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownSiloError,
    UnknownTableError,
)
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

if TYPE_CHECKING:
    from io_managers.results import ParquetResultsIOManager
    from io_managers.silo import SiloIOManager, silo_io_manager
    from resources.silos.bigquery import BigQuerySilo
    from resources.silos.delta import DeltaSilo
    from resources.silos.duckdb import DuckDBSilo
    from resources.silos.parquet import ParquetSilo
    from resources.silos.postgres import PostgresSilo
    from resources.silos.snowflake import SnowflakeSilo
    from resources.silos.sqlite import SQLiteSilo

# Imported on first use: each silo kind pulls in its own driver (Snowflake, BigQuery, ...).
_LAZY = {
    **{path.split(":")[1]: path for path in SILO_KINDS.values()},
    "ParquetResultsIOManager": "io_managers.results:ParquetResultsIOManager",
    "SiloIOManager": "io_managers.silo:SiloIOManager",
    "silo_io_manager": "io_managers.silo:silo_io_manager",
    # training pulls in torch and transformers
    "fine_tune": "fed_assets.train.fine_tune:fine_tune",
    "FineTunedModel": "fed_assets.train.model:FineTunedModel",
    "TrainingConfig": "fed_assets.train.config:TrainingConfig",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name].split(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'fed_assets' has no attribute {name!r}")


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
    # imported on first use (see _LAZY)
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
]
