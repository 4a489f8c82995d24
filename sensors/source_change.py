"""The source-change sensor: watched silo tables' fingerprints in, observations and retrains out.

Each tick reads ``version(table)`` of every watched table (metadata only: catalog counters,
listings, log versions, file headers), one thread per silo so a slow or dead silo holds up no
other, and change counters where the silo keeps them (``sensors.counters``). New fingerprints are
recorded as ``AssetObservation``s carrying the data version; the models downstream of a changed
table, found through the asset graph by their tag, are requested with the datasets between the
table and the model (their blocking quality checks included), a run key naming the state of the
model's sources, and the compute placement's tags. What it decided and why is in the tick log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from fed_assets.asset_graph import MODELS, model_sources, run_selection
from fed_assets.catalog import SILO_META, TABLE_META, Catalog
from fed_assets.errors import FedAssetsError, SiloUnreachableError, UnknownTableError
from fed_assets.silo import SiloResource, TableVersion
from sensors.counters import change_counts
from sensors.watch import Cursor, Reading, Retrain, Rules, Unreadable, advance, describe

# Ticks at most this often by default: a metadata read per table is cheap, but a minute is as
# fresh as a retrain decision needs to be.
DEFAULT_INTERVAL_S = 60
# Silos read at the same time in one tick, and tables of one silo read at the same time: enough
# to overlap round trips to a remote silo, few enough not to crowd a database's connections.
MAX_PARALLEL_SILOS = 8
PER_SILO_PARALLEL = 4
# Tag values longer than this are cut (the UI shows tags on one line).
TAG_VALUE_CHARS = 200
# Run tags the sensor sets on every run it requests.
TRIGGER_TAG = "fed_assets/trigger"
SOURCES_TAG = "fed_assets/changed_sources"

# The compute placement's tags for a model's run (e.g. a GPU pool, a Kubernetes request).
TagsFor = Callable[[dg.AssetKey], Mapping[str, str]]
# Where a model's materialisation records the run tags of the pool it was placed on
# (``fed_assets.placement.report.placement_metadata``).
PLACEMENT_TAGS_META = "placement/tags"


@dataclass(frozen=True)
class Observed:
    """What was read of one table this tick, beyond the fingerprint itself."""

    version: TableVersion
    schema_drift: str = ""


def source_change_sensor(
    catalog: Catalog,
    *,
    name: str = "source_change_sensor",
    watched: dg.AssetSelection | None = None,
    models: dg.AssetSelection = MODELS,
    threshold: float = 0.0,
    cooldown_s: float = 0.0,
    tags: TagsFor | None = None,
    minimum_interval_seconds: int = DEFAULT_INTERVAL_S,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that retrains the models downstream of watched silo tables when they change.

    Args:
        catalog: the silos (their resources are the sensor's) whose tables may be watched.
        watched: which silo tables to watch (default: every table of every catalog silo).
        models: which assets are models (default: those tagged ``fed_assets/role=model``).
        threshold: smallest changed fraction of a table that requests a retrain, where the silo
            counts changed rows (PostgreSQL); elsewhere any change counts as a whole one.
        cooldown_s: least seconds between two requests for the same model.
        tags: the compute placement's run tags for a model (e.g. ``lambda key:
            placement_for_training(estate, ...).tags``); by default the tags of the pool the
            model's latest materialisation recorded that it was placed on.
    """
    rules = Rules(threshold=threshold, cooldown_s=cooldown_s)

    @dg.sensor(
        name=name,
        asset_selection=models.upstream().materializable(),
        required_resource_keys=set(catalog.silos),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Reads the change fingerprint of every watched silo table (metadata only), "
        "records it as the table's data version, and retrains exactly the models downstream "
        f"of a changed table (threshold {threshold:.0%} where the silo counts changed rows, "
        f"cool-down {cooldown_s:.0f} s).",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        graph = context.repository_def.asset_graph
        watch = watched_tables(graph, watched)
        cursor = Cursor.from_json(context.cursor)
        readings, observed = read_tables(context.resources, watch, cursor)
        sources = model_sources(graph, models, set(watch))
        tick = advance(cursor, readings, sources, rules, time.time())
        for table, reason in tick.errors.items():
            context.log.warning(f"{table}: not read this tick, its entry is kept: {reason}")
        for table in tick.changed:
            if observed[table].schema_drift:
                context.log.warning(f"{table}: schema changed: {observed[table].schema_drift}")
        for wait in tick.waits:
            context.log.info(f"{wait.model}: changed sources, not requested: {wait.reason}")
        events = [
            observation(watch[t].key, observed[t], readings[t])
            for t in (*tick.first_seen, *tick.changed)
        ]
        tags_for = tags or (lambda key: recorded_placement(context.instance, key))
        requests = [r for retrain in tick.retrains for r in run_requests(graph, retrain, tags_for)]
        for retrain in tick.retrains:
            context.log.info(f"{retrain.model}: retrain requested ({retrain.run_key})")
        return dg.SensorResult(
            run_requests=requests,
            asset_events=events,
            cursor=tick.cursor.to_json(),
            skip_reason=None if requests else skip_message(tick),
        )

    return _sensor


@dataclass(frozen=True)
class Watched:
    """A watched silo table as the asset graph describes it."""

    key: dg.AssetKey
    silo: str
    table: str
    columns: Mapping[str, str]


def watched_tables(graph, watched: dg.AssetSelection | None) -> dict[str, Watched]:
    """``"silo/table"`` → every watched silo table (its asset metadata names silo and table)."""
    keys = (
        watched.resolve(graph, allow_missing=True)
        if watched is not None
        else graph.observable_asset_keys
    )
    out = {}
    for key in sorted(keys):
        metadata = graph.get(key).metadata
        if SILO_META not in metadata:
            continue
        schema = metadata.get("dagster/column_schema")
        columns = {c.name: c.type for c in schema.columns} if schema is not None else {}
        out[key.to_user_string()] = Watched(key, metadata[SILO_META], metadata[TABLE_META], columns)
    return out


def read_tables(
    resources: object, watch: Mapping[str, Watched], cursor: Cursor
) -> tuple[dict[str, Reading | Unreadable], dict[str, Observed]]:
    """Read every watched table's fingerprint (and counters), silos and tables in parallel.

    A table whose fingerprint differs from the cursor's has its schema read too and compared
    with the catalog's, so a column added, removed or retyped is recorded with the change.
    """
    by_silo: dict[str, list[str]] = {}
    for name, table in watch.items():
        by_silo.setdefault(table.silo, []).append(name)

    def read_silo(silo_name: str) -> list[tuple[str, Reading | Unreadable, Observed | None]]:
        silo: SiloResource = getattr(resources, silo_name)
        names = by_silo[silo_name]
        out: list[tuple[str, Reading | Unreadable, Observed | None]] = []
        try:  # one listing per silo: a dropped or renamed table is told apart from a change
            present = {t.lower() for t in silo.tables()}
        except Exception as err:  # the silo is down: none of its tables is read
            return [(n, Unreadable(_reason(err)), None) for n in names]
        gone = [n for n in names if watch[n].table.lower() not in present]
        out.extend((n, Unreadable(_gone(silo_name, watch[n].table)), None) for n in gone)
        names = [n for n in names if n not in gone]
        try:
            counts = change_counts(silo, [watch[n].table for n in names])
        except SiloUnreachableError as err:  # went down since the listing
            return [*out, *((n, Unreadable(_reason(err)), None) for n in names)]
        except Exception:  # counters only refine the threshold: the fingerprints decide
            counts = {}
        down: list[str] = []  # set by the first read that finds the silo unreachable

        def read_one(name: str) -> tuple[str, Reading | Unreadable, Observed | None]:
            table = watch[name]
            if down:  # no point waiting for a connect timeout once per table
                return name, Unreadable(down[0]), None
            try:
                version = silo.version(table.table)
            except Exception as err:
                if isinstance(err, SiloUnreachableError):
                    down.append(_reason(err))
                return name, Unreadable(_reason(err)), None
            changes, live = counts.get(table.table) or (None, None)
            drift = ""
            old = cursor.tables.get(name)
            if old is not None and old.version != version.fingerprint:
                drift = schema_drift(silo, table)
            return name, Reading(version.fingerprint, changes, live), Observed(version, drift)

        workers = max(1, min(PER_SILO_PARALLEL, len(names)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=silo_name) as tables:
            out.extend(tables.map(read_one, names))
        return out

    readings: dict[str, Reading | Unreadable] = {}
    observed: dict[str, Observed] = {}
    workers = max(1, min(MAX_PARALLEL_SILOS, len(by_silo)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="silo-version") as pool:
        for results in pool.map(read_silo, sorted(by_silo)):
            for name, reading, seen in results:
                readings[name] = reading
                if seen is not None:
                    observed[name] = seen
    return readings, observed


def schema_drift(silo: SiloResource, table: Watched) -> str:
    """Columns added, removed or retyped against the catalog's schema ('' when none)."""
    if not table.columns:
        return ""
    try:
        live = {f.name: str(f.type) for f in silo.schema(table.table)}
    except Exception as err:
        return f"schema unreadable: {_reason(err)}"
    added = [c for c in live if c not in table.columns]
    removed = [c for c in table.columns if c not in live]
    retyped = [
        f"{c} ({table.columns[c]} → {live[c]})"
        for c in live
        if c in table.columns and live[c] != table.columns[c]
    ]
    parts = []
    for label, cols in (("added", added), ("removed", removed), ("retyped", retyped)):
        if cols:
            parts.append(f"{label}: {', '.join(cols)}")
    return "; ".join(parts)


def _gone(silo: str, table: str) -> str:
    return str(
        UnknownTableError(
            f"silo '{silo}', table '{table}'",
            "the table is no longer in the silo (dropped or renamed)",
            "restore it, or refresh the catalog (`fed-assets catalog refresh`) so that the asset "
            "graph stops listing it",
        )
    )


def _reason(err: Exception) -> str:
    if isinstance(err, FedAssetsError):
        return str(err)
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def observation(key: dg.AssetKey, observed: Observed, reading: Reading) -> dg.AssetObservation:
    """The observation recording ``reading`` as the table's data version."""
    metadata: dict[str, object] = {
        "version/method": observed.version.method,
        "version/detail": observed.version.detail,
    }
    if reading.changes is not None:
        metadata["rows changed (cumulative)"] = reading.changes
    if reading.live_rows is not None:
        metadata["rows now"] = reading.live_rows
    if observed.schema_drift:
        metadata["schema drift"] = observed.schema_drift
    return dg.AssetObservation(
        asset_key=key, metadata=metadata, tags={DATA_VERSION_TAG: reading.version}
    )


def run_requests(graph, retrain: Retrain, tags: TagsFor | None) -> list[dg.RunRequest]:
    """The run request(s) of one retrain: one run, or one per partition of a partitioned model."""
    model = dg.AssetKey.from_user_string(retrain.model)
    changed = [dg.AssetKey.from_user_string(t) for t in retrain.changed]
    selection = run_selection(graph, model, changed)
    run_tags = {
        TRIGGER_TAG: "source change",
        SOURCES_TAG: ", ".join(sorted(retrain.changed))[:TAG_VALUE_CHARS],
        **(tags(model) if tags is not None else {}),
    }
    partitions = graph.get(model).partitions_def
    if partitions is None:
        return [dg.RunRequest(run_key=retrain.run_key, asset_selection=selection, tags=run_tags)]
    keys = partitions.get_partition_keys()
    silos = {t.split("/", 1)[0] for t in retrain.changed}
    named = [k for k in keys if k in silos] or keys  # per-silo partitions: only the silo's own
    return [
        dg.RunRequest(
            run_key=f"{retrain.run_key}:{key}",
            asset_selection=selection,
            partition_key=key,
            tags=run_tags,
        )
        for key in named
    ]


def recorded_placement(instance: dg.DagsterInstance, model: dg.AssetKey) -> dict[str, str]:
    """The run tags of the pool ``model``'s latest materialisation was placed on ({} if none)."""
    event = instance.get_latest_materialization_event(model)
    if event is None or event.asset_materialization is None:
        return {}
    entry = event.asset_materialization.metadata.get(PLACEMENT_TAGS_META)
    value = getattr(entry, "value", None)
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def skip_message(tick) -> str:
    """Why a tick requested nothing, in one line."""
    summary = describe(tick)
    parts = [f"{len(tick.changed)} table(s) changed"]
    if summary["waiting"]:
        parts.append("waiting: " + "; ".join(f"{m}: {r}" for m, r in summary["waiting"].items()))
    if summary["errors"]:
        parts.append("not read: " + "; ".join(f"{t}: {r}" for t, r in summary["errors"].items()))
    return ", ".join(parts)
