"""The catalog: every silo table as a Dagster source asset, from a cached snapshot.

Loading the code location must not depend on silos being reachable, so the table list and schemas
come from a JSON snapshot (refreshed by ``refresh_catalog`` or the ``fed-assets catalog refresh``
command). A silo missing from the snapshot is discovered live once; if it is down, its group is
left out with a warning instead of blanking the UI.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from fed_assets.errors import FedAssetsError
from fed_assets.silo import SiloResource, TableVersion

log = logging.getLogger(__name__)

# The asset key metadata the silo IO manager reads to find the silo table behind an asset.
SILO_META = "fed/silo"
TABLE_META = "fed/table"
# Resource key prefix of the IO managers that read silo tables in place: one per silo, so a step
# requires (and starts) only the silos it reads.
SILO_IO_MANAGER_KEY = "silo_io_manager"
# The tags Dagster reads a data version from (those of ``ObserveResult(data_version=...)``);
# written by hand only where Dagster offers no public way: an observation logged during a read.
DATA_VERSION_TAG = "dagster/data_version"
DATA_VERSION_IS_USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class CatalogTable:
    """One silo table as recorded in a snapshot."""

    silo: str
    table: str
    columns: tuple[tuple[str, str], ...]
    rows: int | None = None

    @property
    def asset_key(self) -> dg.AssetKey:
        return table_asset_key(self.silo, self.table)


def table_asset_key(silo: str, table: str) -> dg.AssetKey:
    """The asset key of ``silo.table``: ``[silo, table]`` with characters Dagster refuses → '_'."""
    return dg.AssetKey([_KEY_UNSAFE.sub("_", silo), _KEY_UNSAFE.sub("_", table)])


def silo_io_manager_key(silo: str) -> str:
    """The resource key of the IO manager that reads ``silo``'s tables in place."""
    return f"{SILO_IO_MANAGER_KEY}__{_KEY_UNSAFE.sub('_', silo)}"


def version_metadata(version: TableVersion) -> dict[str, str]:
    """What an observation shows of a table's change fingerprint."""
    return {"version/method": version.method, "version/detail": version.detail}


def read_observation(
    key: dg.AssetKey, version: TableVersion, metadata: Mapping[str, Any] | None = None
) -> dg.AssetObservation:
    """An observation of silo table ``key`` at ``version``, recorded by whatever reads it: it
    carries the same data version as the source's own observation (``Catalog.source_assets``)."""
    return dg.AssetObservation(
        asset_key=key,
        metadata={**version_metadata(version), **(metadata or {})},
        tags={DATA_VERSION_TAG: version.fingerprint, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"},
    )


def record_read(step_context, observation: dg.AssetObservation) -> None:
    """Record ``observation`` of a source now, and make the running step's provenance use it.

    Dagster reads the data versions of a step's inputs before the step loads them; a read that
    observes a newer version must replace that record, or the output would claim to be built on
    the version seen before (and look stale at once). Creating the step event stores it in the
    instance; wiping the step's cached input version makes Dagster look it up again when it
    records the output.

    Args:
        step_context: the running step's ``StepExecutionContext``.
    """
    from dagster._core.events import DagsterEvent  # no public API logs from an IO manager

    DagsterEvent.asset_observation(step_context, observation)
    step_context.wipe_input_asset_version_info(observation.asset_key)


def describe_silo(silo: SiloResource) -> list[CatalogTable]:
    """Read the silo's tables and schemas live (metadata only)."""
    out = []
    for table in silo.tables():
        schema = silo.schema(table)
        try:
            rows = silo.stats(table).rows
        except FedAssetsError:
            rows = None
        out.append(
            CatalogTable(
                silo=silo.name,
                table=table,
                columns=tuple((f.name, str(f.type)) for f in schema),
                rows=rows,
            )
        )
    return out


class Catalog:
    """The silos, and a snapshot of their tables, turned into source assets."""

    def __init__(self, silos: Mapping[str, SiloResource], snapshot_path: str | os.PathLike):
        for key, silo in silos.items():
            if key != silo.name:
                raise FedAssetsError(
                    f"silo '{silo.name}'",
                    f"it is registered under the resource key '{key}'",
                    "register every silo under its own name",
                )
        self.silos = dict(silos)
        self.snapshot_path = Path(snapshot_path)
        # Silos missing from the snapshot, read live once (never written by reading); None:
        # it could not be read, so it stays out of the graph until the next load.
        self._discovered: dict[str, dict | None] = {}

    # ------------------------------------------------------------------ snapshot
    def refresh(self, names: list[str] | None = None) -> dict[str, str]:
        """Re-read the named silos (all by default) live and save the snapshot atomically.

        Returns:
            silo name → "ok" or the error that kept it from being read (its old entry is kept).
        """
        snapshot = self._read_snapshot()
        found, outcome = self._discover(names or list(self.silos))
        snapshot.update(found)
        write_atomic(self.snapshot_path, json.dumps({"silos": snapshot}, indent=1).encode())
        self._discovered = {}
        return outcome

    def _discover(self, names: list[str]) -> tuple[dict[str, dict], dict[str, str]]:
        """Snapshot entries of the named silos read live, and each one's outcome."""
        found, outcome = {}, {}
        for name in names:
            try:
                tables = describe_silo(self.silos[name])
            except FedAssetsError as err:
                outcome[name] = str(err)
                continue
            found[name] = {
                "kind": self.silos[name].kind,
                "refreshed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "tables": {
                    t.table: {"columns": [list(c) for c in t.columns], "rows": t.rows}
                    for t in tables
                },
            }
            outcome[name] = "ok"
        return found, outcome

    def _read_snapshot(self) -> dict:
        if not self.snapshot_path.exists():
            return {}
        try:
            return json.loads(self.snapshot_path.read_text())["silos"]
        except (ValueError, KeyError) as err:
            log.warning(
                "catalog snapshot %s unreadable (%s); rediscovering", self.snapshot_path, err
            )
            return {}

    def tables(self) -> Iterator[CatalogTable]:
        """Every table of every configured silo: from the snapshot, else discovered live.

        Reading never writes: a silo missing from the snapshot is discovered once per
        ``Catalog`` and kept in memory (loading a code location has no side effects); only
        ``refresh`` saves the snapshot.
        """
        snapshot = self._read_snapshot()
        missing = [n for n in self.silos if n not in snapshot and n not in self._discovered]
        if missing:
            found, outcome = self._discover(missing)
            self._discovered.update({name: found.get(name) for name in missing})
            for name, result in outcome.items():
                if result != "ok":
                    log.warning("silo %s left out of the asset graph: %s", name, result)
        snapshot = {**{n: e for n, e in self._discovered.items() if e}, **snapshot}
        for name in self.silos:
            for table, entry in snapshot.get(name, {}).get("tables", {}).items():
                yield CatalogTable(
                    silo=name,
                    table=table,
                    columns=tuple(tuple(c) for c in entry["columns"]),
                    rows=entry.get("rows"),
                )

    # ------------------------------------------------------------------ assets
    def source_assets(self) -> list[dg.AssetsDefinition]:
        """One observable multi-asset per silo; observing records each table's ``version()``."""
        by_silo: dict[str, list[CatalogTable]] = {}
        for table in self.tables():
            by_silo.setdefault(table.silo, []).append(table)
        return [_observable_silo(self.silos[name], tables) for name, tables in by_silo.items()]

    def placeholder_specs(self, keys: Iterable[dg.AssetKey]) -> list[dg.AssetSpec]:
        """Specs for ``keys`` that name a table of a configured silo the catalog could not list
        (the silo is down and was never snapshotted): the assets that read them still load, and
        their runs fail with the silo's own error until it is back."""
        silo_of = {table_asset_key(n, "x").path[0]: n for n in self.silos}
        specs = []
        for key in keys:
            if len(key.path) != 2 or key.path[0] not in silo_of:
                continue
            silo = self.silos[silo_of[key.path[0]]]
            specs.append(
                dg.AssetSpec(
                    key=key,
                    group_name=key.path[0],
                    kinds={silo.kind},
                    description=f"Table `{key.path[1]}` of silo `{silo.name}`, which could not "
                    "be read when the code location loaded; refresh the catalog snapshot "
                    "(`fed-assets catalog refresh`) once it is reachable.",
                    metadata={SILO_META: silo.name, TABLE_META: key.path[1], "region": silo.region},
                ).with_io_manager_key(silo_io_manager_key(silo.name))
            )
        return specs


def _spec(silo: SiloResource, table: CatalogTable) -> dg.AssetSpec:
    policy = silo.policy
    pii = sorted(policy.for_table(table.table).pii_columns)
    metadata = {
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name=n, type=t, tags={"pii": ""} if n.lower() in pii else {})
                for n, t in table.columns
            ]
        ),
        "region": silo.region,
        "policy/export": policy.for_table(table.table).export,
        "policy/pii_columns": ", ".join(pii) or "none",
        SILO_META: silo.name,
        TABLE_META: table.table,
    }
    if table.rows is not None:
        metadata["dagster/row_count"] = table.rows
    if silo.owner:
        metadata["owner"] = silo.owner
    return dg.AssetSpec(
        key=table.asset_key,
        group_name=table.asset_key.path[0],
        kinds={silo.kind},
        description=f"Table `{table.table}` of the {silo.kind} silo `{silo.name}` "
        f"(region {silo.region}); read in place, never copied.",
        metadata=metadata,
        tags={"region": silo.region},
    ).with_io_manager_key(silo_io_manager_key(silo.name))


def _observable_silo(silo: SiloResource, tables: list[CatalogTable]) -> dg.AssetsDefinition:
    specs = [_spec(silo, t) for t in tables]
    table_of = {t.asset_key: t.table for t in tables}

    with warnings.catch_warnings():  # multi_observable_source_asset is marked beta
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _observable(silo, specs, table_of)


def _observable(silo, specs, table_of) -> dg.AssetsDefinition:
    resource_key = silo.name

    @dg.multi_observable_source_asset(
        specs=specs,
        name=f"observe_{table_asset_key(silo.name, 'x').path[0]}",
        can_subset=True,
        required_resource_keys={resource_key},
        description=f"Read each table's change fingerprint from silo {silo.name}.",
    )
    def observe(context):
        live: SiloResource = getattr(context.resources, resource_key)
        for key in sorted(context.selected_asset_keys, key=lambda k: k.to_string()):
            version = live.version(table_of[key])
            yield dg.ObserveResult(
                asset_key=key,
                data_version=dg.DataVersion(version.fingerprint),
                metadata=version_metadata(version),
            )

    return observe


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def arrow_schema_of(table: CatalogTable) -> pa.Schema:
    """The snapshot's column list as an Arrow schema (types parsed from their string form)."""
    return pa.schema([(n, _parse_arrow(t)) for n, t in table.columns])


_DECIMAL = re.compile(r"decimal(?:128|256)?\((\d+),\s*(-?\d+)\)")
_TIMESTAMP_TZ = re.compile(r"timestamp\[(s|ms|us|ns), tz=([^\]]+)\]")


def _parse_arrow(name: str) -> pa.DataType:
    """An Arrow type from its ``str()`` form; types without an alias parsed here, else string."""
    if match := _DECIMAL.fullmatch(name):
        precision, scale = int(match[1]), int(match[2])
        return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)
    if match := _TIMESTAMP_TZ.fullmatch(name):
        return pa.timestamp(match[1], tz=match[2])
    try:
        return pa.type_for_alias(name)
    except ValueError:
        return pa.string()
