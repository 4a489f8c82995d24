"""Silos from configuration: a YAML file maps silo names to a kind and its settings.

```yaml
silos:
  eu_core_banking:
    kind: postgres
    region: eu
    host: db.internal
    password: {env: CORE_BANKING_PASSWORD}   # becomes dagster.EnvVar, never stored in code
    policy: {pii_columns: [customers.full_name]}
```
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from fed_assets.errors import ConfigurationError
from fed_assets.silo import SiloResource

# kind → "module:Class"; imported on use, so a deployment without, say, the BigQuery client
# libraries can still run DuckDB and Parquet silos.
SILO_KINDS = {
    "duckdb": "resources.silos.duckdb:DuckDBSilo",
    "sqlite": "resources.silos.sqlite:SQLiteSilo",
    "parquet": "resources.silos.parquet:ParquetSilo",
    "delta": "resources.silos.delta:DeltaSilo",
    "postgres": "resources.silos.postgres:PostgresSilo",
    "snowflake": "resources.silos.snowflake:SnowflakeSilo",
    "bigquery": "resources.silos.bigquery:BigQuerySilo",
}


def silo_class(kind: str) -> type[SiloResource]:
    """The resource class for a silo ``kind``."""
    if kind not in SILO_KINDS:
        raise ConfigurationError(
            f"silo kind '{kind}'",
            "no such silo kind",
            f"use one of: {', '.join(SILO_KINDS)}",
        )
    module, cls = SILO_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), cls)


def silo_from_config(
    name: str, settings: Mapping[str, Any], *, resolve_env: bool = False
) -> SiloResource:
    """Build one silo from its settings; ``{env: NAME}`` values become ``dagster.EnvVar(NAME)``.

    Args:
        resolve_env: read environment variables now (for use outside Dagster, e.g. the CLI).
    """
    settings = dict(settings)
    kind = settings.pop("kind", None)
    if kind is None:
        raise ConfigurationError(
            f"silo '{name}'", "it has no 'kind'", f"add kind: one of {', '.join(SILO_KINDS)}"
        )
    values = {k: _env(name, k, v, resolve_env) for k, v in settings.items()}
    try:
        return silo_class(kind)(name=name, **values)
    except (TypeError, ValueError) as err:  # pydantic validation errors are ValueErrors
        raise ConfigurationError(
            f"silo '{name}' ({kind})",
            f"invalid settings: {str(err).splitlines()[0] if str(err) else err}",
            f"see the fields of {silo_class(kind).__name__}",
        ) from None


def _env(silo: str, key: str, value: Any, resolve: bool) -> Any:
    if isinstance(value, Mapping) and set(value) == {"env"}:
        if not resolve:
            return dg.EnvVar(value["env"])
        if value["env"] not in os.environ:
            raise ConfigurationError(
                f"silo '{silo}', setting '{key}'",
                f"environment variable {value['env']} is not set",
                f"export {value['env']}=...",
            )
        return os.environ[value["env"]]
    return value


def silos_from_yaml(
    path: str | os.PathLike, *, resolve_env: bool = False
) -> dict[str, SiloResource]:
    """Every silo in a YAML file's ``silos:`` mapping, by name."""
    path = Path(path)
    if not path.exists():
        raise ConfigurationError(f"silo file {path}", "it does not exist", "check the path")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigurationError(
            f"silo file {path}", f"invalid YAML: {err}", "fix the syntax"
        ) from None
    silos = doc.get("silos")
    if not isinstance(silos, Mapping) or not silos:
        raise ConfigurationError(
            f"silo file {path}", "no 'silos:' mapping", "list silos under 'silos:'"
        )
    return {
        name: silo_from_config(name, s or {}, resolve_env=resolve_env) for name, s in silos.items()
    }
