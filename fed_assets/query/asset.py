"""``federated_asset``: one federated SQL query as a Dagster asset, checked when the code loads.

At definition time the SQL is planned against the catalog snapshot (tables, schemas, row counts)
through stand-ins for the silos that never contact them, so a bad query fails when the code
location loads and one silo being down never blanks the UI. At materialisation the same SQL,
narrowed to the run's partition, is planned and run against the live silo resources, and the
plan, the fragments and what moved where are recorded as metadata.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pyarrow as pa
from sqlglot import exp

from fed_assets import metadata as md
from fed_assets.catalog import (
    Catalog,
    CatalogTable,
    arrow_schema_of,
    read_observation,
    record_read,
    table_asset_key,
)
from fed_assets.errors import (
    ConfigurationError,
    FedAssetsError,
    SchemaDriftError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownSiloError,
    UnknownTableError,
)
from fed_assets.filters import parse_read_only
from fed_assets.partitions import asset_partition_condition, files_in_partition
from fed_assets.query import _with_policy, query
from fed_assets.query.execute import FRAGMENT_TIMEOUT_S, QUERY_TIMEOUT_S
from fed_assets.query.model import Plan, QueryResult
from fed_assets.query.planner import parse_query, plan
from fed_assets.query.report import fragment_rows, plan_markdown
from fed_assets.query.tree import cte_names
from fed_assets.silo import SiloPolicy, SiloResource, TablePolicy, TableStats

log = logging.getLogger(__name__)

# The kind every federated asset carries: the residual query runs in an embedded DuckDB.
ENGINE_KIND = "duckdb"


@dataclass(frozen=True)
class Validated:
    """What planning against the catalog snapshot learned about a query.

    Attributes:
        plan: the plan made from the snapshot (estimates from its row counts); ``None`` when a
            silo the query reads has never been snapshotted and cannot be read now.
        tables: (silo, table as the catalog spells it) for every silo table the query reads.
        unchecked: why the query could not be checked at load (empty when it was).
    """

    plan: Plan | None
    tables: tuple[tuple[str, str], ...]
    unchecked: str = ""

    @property
    def silos(self) -> tuple[str, ...]:
        return tuple(sorted({silo for silo, _ in self.tables}))


def federated_asset(
    name: str,
    sql: str,
    *,
    catalog: Catalog,
    group_name: str | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
    partition_columns: Mapping[str, str] | None = None,
    engine_region: str | None = None,
    policy: Mapping[str, SiloPolicy | TablePolicy] | None = None,
    timeout_s: float | None = None,
    query_timeout_s: float | None = None,
    description: str | None = None,
    compute: str | None = None,
    **asset_kwargs: Any,
) -> dg.AssetsDefinition:
    """An asset whose value is the result of federated ``sql`` over the catalog's silos.

    Args:
        name: asset name.
        sql: one SELECT naming tables as ``silo.table`` (DuckDB dialect).
        catalog: the silos and the snapshot of their tables; the query is checked against it
            without contacting any silo.
        partitions_def: partitions of the asset; each run reads only its partition of the tables
            named in ``partition_columns``.
        partition_columns: ``"silo.table"`` → the column holding the partition (a timestamp for
            time windows, the key for static partitions); the condition is pushed into the silo.
        engine_region: where the embedded engine runs (residency checks use it); with
            ``compute``, where the query is checked when the code loads.
        policy: extra residency rules by ``"silo"`` or ``"silo.table"``.
        timeout_s: seconds one fragment may run in its silo before it is cancelled there
            (default: ``query()``'s); a silo's ``statement_timeout_s`` may lower it.
        query_timeout_s: seconds all fragments of one materialisation may take together.
        compute: the resource key of a ``resources.compute.ComputeEstate``: each run's engine
            region is then chosen by it (``choose_engine_region``: allowed by every input's
            policy, fewest dollars then bytes moved, at the estate's link prices) and the
            planner prices every route from the estate's figures (``estate.priced_silos``);
            the region, the reasons and the prices used are recorded.
        asset_kwargs: passed on to ``dagster.asset`` (``kinds``, ``metadata`` and
            ``required_resource_keys`` are merged with the derived ones).

    Raises:
        FedAssetsError: the SQL does not parse, names an unknown silo, table or column, breaks a
            residency policy, or ``partition_columns`` does not fit the query.
    """
    snapshot = snapshot_tables(catalog)
    validated = validate(
        sql, catalog, engine_region=engine_region, policy=policy, snapshot=snapshot
    )
    targets = _partition_targets(name, validated, snapshot, partitions_def, partition_columns)
    silo_names = validated.silos
    kinds = {catalog.silos[s].kind for s in silo_names} | {ENGINE_KIND}
    kinds |= set(asset_kwargs.pop("kinds", None) or ())
    metadata = {
        "fed/sql": dg.MetadataValue.md(f"```sql\n{sql.strip()}\n```"),
        "fed/silos": ", ".join(silo_names),
        "fed/engine_region": engine_region or "unset",
        "fed/time_bounds": f"fragment {_or(timeout_s, FRAGMENT_TIMEOUT_S):g} s, query "
        f"{_or(query_timeout_s, QUERY_TIMEOUT_S):g} s",
        "fed/checked_at_load": validated.unchecked or "yes, against the catalog snapshot",
        **(asset_kwargs.pop("metadata", None) or {}),
    }
    resource_keys = set(silo_names) | set(asset_kwargs.pop("required_resource_keys", None) or ())
    resource_keys |= {compute} if compute else set()
    deps = [table_asset_key(s, t) for s, t in validated.tables]
    deps += list(asset_kwargs.pop("deps", None) or ())
    read = ", ".join(f"`{s}.{t}`" for s, t in validated.tables)
    # Only the silos the query reads are resources of the asset: policies for others are moot.
    run_policy = {k: v for k, v in (policy or {}).items() if k.partition(".")[0] in silo_names}

    code_version = asset_kwargs.pop("code_version", None) or _code_version(
        sql, engine_region, run_policy, targets
    )

    @dg.asset(
        name=name,
        deps=deps,
        code_version=code_version,
        group_name=group_name,
        partitions_def=partitions_def,
        required_resource_keys=resource_keys,
        kinds=kinds,
        description=description or f"Federated query over {read}.",
        metadata=metadata,
        **asset_kwargs,
    )
    def _federated(context):  # no annotations: postponed ones are strings Dagster refuses
        silos = {s: getattr(context.resources, s) for s in silo_names}
        record_versions(context, silos, validated.tables)
        refuse_retyped_columns(sql, silos, validated.tables, snapshot)
        filters = {t: asset_partition_condition(context, c) for t, c in targets.items()}
        run_sql = partition_filtered(sql, {k: v for k, v in filters.items() if v is not None})
        region, planned_silos, placed = engine_region, silos, None
        if compute:
            from fed_assets.placement.engine_region import engine_at_run_time

            estate = getattr(context.resources, compute)
            placed, planned_silos = engine_at_run_time(run_sql, silos, estate, policy=run_policy)
            region = placed.region
            context.log.info(f"engine placed in {region}: {placed.reasons[0]}")
        result = query(
            run_sql,
            planned_silos,
            policy=run_policy,
            engine_region=region,
            timeout_s=timeout_s,
            query_timeout_s=query_timeout_s,
        )
        context.log.info(
            f"{result.table.num_rows:,} rows from {len(result.fragments)} fragment(s); "
            f"moved {result.bytes_moved:,} bytes"
        )
        dialects = {name: silo.dialect for name, silo in silos.items()}
        metadata = run_metadata(result, dialects)
        if placed is not None:
            from fed_assets.placement.engine_region import engine_metadata

            metadata.update(engine_metadata(placed, planned_silos))
        files = _files_read(silos, filters)
        if files:
            metadata["files read"] = md.table(files)
        return dg.Output(result.table, metadata=metadata)

    return _federated


def refuse_retyped_columns(
    sql: str,
    silos: Mapping[str, Any],
    tables: Any,
    snapshot: Mapping[str, Mapping[str, CatalogTable]],
) -> None:
    """Fail before any row moves when a column the query names has another type in the silo
    than in the snapshot the asset was checked against (a removed column fails in planning)."""
    named = {
        c.name.lower()
        for c in parse_read_only(sql, dialect="duckdb", where="query").find_all(exp.Column)
    }
    for silo_name, table in tables:
        entry = (snapshot.get(silo_name) or {}).get(table)
        if entry is None:
            continue
        was = {n.lower(): t for n, t in entry.columns}
        for field in silos[silo_name].schema(table):
            before = was.get(field.name.lower())
            if field.name.lower() in named and before is not None and before != str(field.type):
                raise SchemaDriftError(
                    f"silo '{silo_name}', table '{table}', column '{field.name}'",
                    f"its type changed from {before} to {field.type} since the catalog snapshot "
                    "this asset was checked against",
                    "check the query against the new type, then refresh the snapshot "
                    "(`fed-assets catalog refresh` or the refresh_catalog_snapshot job) and "
                    "reload the code location",
                )


def validate(
    sql: str,
    catalog: Catalog,
    *,
    engine_region: str | None = None,
    policy: Mapping[str, SiloPolicy | TablePolicy] | None = None,
    snapshot: Mapping[str, Mapping[str, CatalogTable]] | None = None,
) -> Validated:
    """Plan ``sql`` against the catalog snapshot, never contacting a silo.

    Args:
        snapshot: ``snapshot_tables(catalog)`` when the caller has read it already.

    Raises:
        FedAssetsError: whatever planning finds wrong (syntax, silo, table, column, policy).
    """
    if snapshot is None:
        snapshot = snapshot_tables(catalog)
    for key in policy or {}:
        if key.partition(".")[0] not in catalog.silos:
            raise ConfigurationError(
                f"policy '{key}'",
                "it names no configured silo",
                f"key policies by 'silo' or 'silo.table'; silos: {', '.join(catalog.silos)}",
            )
    stand_ins = {
        name: SnapshotSilo(silo, snapshot.get(name))
        for name, silo in _with_policy(catalog.silos, policy).items()
    }
    read: list[tuple[str, str]] = []

    def schema_source(silo: SiloResource, table: str) -> pa.Schema:
        read.append((silo.name, table))
        return silo.schema(table)

    try:
        planned = plan(sql, stand_ins, engine_region=engine_region, schema_source=schema_source)
    except SiloUnreachableError as err:  # a silo never snapshotted and down: check at run time
        log.warning("federated query not checked at load: %s", err)
        return Validated(
            plan=None, tables=_tables_named(sql, snapshot, catalog), unchecked=str(err)
        )
    return Validated(plan=planned, tables=tuple(sorted(set(read))))


def snapshot_tables(catalog: Catalog) -> dict[str, dict[str, CatalogTable]]:
    """silo → table → its snapshot entry; silos never snapshotted (and down now) are absent."""
    snapshot: dict[str, dict[str, CatalogTable]] = {}
    for table in catalog.tables():
        snapshot.setdefault(table.silo, {})[table.table] = table
    return snapshot


def _tables_named(
    sql: str, snapshot: Mapping[str, Mapping[str, CatalogTable]], catalog: Catalog
) -> tuple[tuple[str, str], ...]:
    """(silo, table) for every ``silo.table`` the SQL names, read from its text alone."""
    tree = parse_query(sql)
    ctes = cte_names(tree)
    silos = {name.lower(): name for name in catalog.silos}
    out = set()
    for table in tree.find_all(exp.Table):
        parts = [p.name for p in table.parts]
        if len(parts) < 2:
            if parts and parts[0].lower() not in ctes and table.name:
                raise UnknownSiloError(
                    f"table '{parts[0]}'",
                    "it names no silo",
                    f"write it as <silo>.{parts[0]}; configured silos: {', '.join(catalog.silos)}",
                )
            continue
        silo = silos.get(parts[0].lower())
        if silo is None:
            raise UnknownSiloError(
                f"silo '{parts[0]}' (in {'.'.join(parts)})",
                "no silo of that name is configured",
                f"use one of: {', '.join(catalog.silos)}",
            )
        name = ".".join(parts[1:])
        known = {t.lower(): t for t in snapshot.get(silo) or {}}
        out.add((silo, known.get(name.lower(), name)))
    return tuple(sorted(out))


class SnapshotSilo:
    """A silo as the catalog snapshot records it, for planning at load time.

    Configuration (name, region, policy, dialect, capabilities, prices) comes from the real
    resource; the table list, schemas and row counts from the snapshot. Nothing here contacts the
    silo: ``version`` reports no fingerprint (so the cost model caches nothing) and ``scan``
    refuses.
    """

    def __init__(self, silo: SiloResource, tables: Mapping[str, CatalogTable] | None):
        """``tables`` is the snapshot's entry for the silo; ``None`` if it was never read."""
        self._silo = silo
        self._snapshotted = tables is not None
        self._tables = dict(tables or {})

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):  # never delegate private state (or recurse before init)
            raise AttributeError(attribute)
        return getattr(self._silo, attribute)

    def tables(self) -> list[str]:
        return sorted(self._tables)

    def require_table(self, table: str) -> str:
        if table in self._tables:
            return table
        lowered = {t.lower(): t for t in self._tables}
        if table.lower() in lowered:
            return lowered[table.lower()]
        if not self._snapshotted:
            raise SiloUnreachableError(
                f"silo '{self._silo.name}'",
                "it is not in the catalog snapshot and could not be read",
                "make the silo reachable and refresh the snapshot (`fed-assets catalog refresh`)",
            )
        shown = ", ".join(sorted(self._tables)[:20]) or "(none)"
        raise UnknownTableError(
            f"silo '{self._silo.name}', table '{table}'",
            "the catalog snapshot has no such table",
            f"use one of: {shown}; if the table is new, refresh the snapshot "
            "(`fed-assets catalog refresh` or the refresh_catalog_snapshot job)",
        )

    def schema(self, table: str) -> pa.Schema:
        return arrow_schema_of(self._tables[self.require_table(table)])

    cached_schema = schema

    def stats(self, table: str) -> TableStats:
        return TableStats(rows=self._tables[self.require_table(table)].rows, bytes=None)

    def version(self, table: str):
        raise FedAssetsError(
            f"silo '{self._silo.name}', table '{table}'",
            "a catalog snapshot has no change fingerprint",
            "plan against the live silo for versioned statistics",
        )

    def scan(self, sql: str) -> pa.RecordBatchReader:
        raise ConfigurationError(
            f"silo '{self._silo.name}'",
            "a catalog-snapshot stand-in cannot run queries",
            "run the query with the live silo resources",
        )


def partition_filtered(sql: str, conditions: Mapping[str, exp.Expression]) -> str:
    """``sql`` with every reference to a table in ``conditions`` (``"silo.table"``, any case)
    replaced by ``(SELECT * FROM silo.table WHERE condition) AS <alias>``; the planner pushes the
    condition into the silo."""
    if not conditions:
        return sql
    wanted = {k.lower(): v for k, v in conditions.items()}
    tree = parse_query(sql)
    ctes = cte_names(tree)
    for table in list(tree.find_all(exp.Table)):
        parts = [p.name for p in table.parts]
        if len(parts) < 2 and parts and parts[0].lower() in ctes:
            continue
        condition = wanted.get(".".join(parts).lower())
        if condition is None:
            continue
        bare = table.copy()
        bare.set("alias", None)
        alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(parts[-1]))
        inner = exp.select("*").from_(bare).where(condition.copy())
        table.replace(exp.Subquery(this=inner, alias=alias.copy()))
    return tree.sql(dialect="duckdb")


def run_metadata(result: QueryResult, dialects: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Dagster metadata for one federated run: plan, fragments, movement, residency, timings.

    Tables where the UI can show a table, SQL laid out by sqlglot's pretty printer.

    Args:
        dialects: silo name → its SQL dialect, to lay out the SQL each silo was sent.
    """
    dialects = dialects or {}
    by_silo: dict[str, dict[str, Any]] = {}
    for r in result.routes:  # every route out of a silo, semi-join keys included
        moved = by_silo.setdefault(r.silo, {"silo": r.silo, "fragments": 0, "rows": 0, "bytes": 0})
        moved["fragments"] += r.kind != "keys"
        moved["rows"] += r.rows or 0
        moved["bytes"] += r.bytes or 0
    metadata: dict[str, Any] = {
        "plan": dg.MetadataValue.md(plan_markdown(result.plan, dialects)),
        "fragments": md.table(fragment_rows(result)),
        "fragment sql": dg.MetadataValue.md(
            "\n\n".join(
                f"**{f.id}** ({f.silo})\n```sql\n{md.pretty_sql(f.sql, dialects.get(f.silo, 'duckdb'))}\n```"
                for f in result.fragments
            )
        ),
        "moved by silo": md.table([by_silo[s] for s in sorted(by_silo)]),
        "run-time decisions": dg.MetadataValue.md(
            "\n".join(f"- {d}" for d in result.decisions) or "none: no semi-join to decide"
        ),
        "rows estimated vs actual": md.table(
            [
                {
                    "fragment": f.id,
                    "silo": f.silo,
                    "estimated": round(f.est_rows),
                    "actual": f.rows,
                    "actual / estimated": round(f.rows / f.est_rows, 2) if f.est_rows else None,
                    "q-error": round(f.q_error, 2),
                }
                for f in result.fragments
            ],
            columns=["fragment", "silo", "estimated", "actual", "actual / estimated", "q-error"],
        ),
        "residency audit": md.table(
            [
                {
                    "kind": r.kind,
                    "via": r.via,
                    "source silo": r.silo,
                    "source region": r.source_region,
                    "destination region": r.destination_region,
                    "rows": r.rows or 0,
                    "bytes": r.bytes or 0,
                    "allowed by": r.rule,
                }
                for r in result.routes
            ]
        ),
        "seconds by stage": md.table(
            [{"stage": k, "seconds": round(v, 4)} for k, v in result.stage_seconds.items()]
        ),
        "bytes moved": result.bytes_moved,
        "dagster/row_count": result.table.num_rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in result.table.schema]
        ),
    }
    for silo, moved in sorted(by_silo.items()):
        metadata[f"rows moved/{silo}"] = moved["rows"]
        metadata[f"bytes moved/{silo}"] = moved["bytes"]
    return metadata


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _partition_targets(
    name: str,
    validated: Validated,
    snapshot: Mapping[str, Mapping[str, CatalogTable]],
    partitions_def: dg.PartitionsDefinition | None,
    partition_columns: Mapping[str, str] | None,
) -> dict[str, str]:
    """``partition_columns`` checked against the query and the snapshot: ``silo.table`` → column."""
    if not partition_columns:
        return {}
    if partitions_def is None:
        raise ConfigurationError(
            f"asset '{name}'",
            "partition_columns is set but partitions_def is not",
            "pass partitions_def, or drop partition_columns",
        )
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        raise ConfigurationError(
            f"asset '{name}'",
            "multi-dimensional partitions cannot become one column predicate",
            "use a time-window, static or dynamic partitions definition",
        )
    read = {f"{s}.{t}".lower(): (s, t) for s, t in validated.tables}
    targets = {}
    for key, column in partition_columns.items():
        if key.lower() not in read:
            raise ConfigurationError(
                f"asset '{name}', partition_columns key '{key}'",
                "the query does not read that table",
                "key partition_columns by a table the query reads: "
                + ", ".join(f"{s}.{t}" for s, t in read.values()),
            )
        silo, table = read[key.lower()]
        entry = (snapshot.get(silo) or {}).get(table)
        names = [c for c, _ in entry.columns] if entry else [column]  # unknown: checked at run
        if column not in names and column.lower() not in {n.lower() for n in names}:
            raise UnknownColumnError(
                f"asset '{name}', partition column '{column}' of {silo}.{table}",
                "the table has no such column",
                f"use one of: {', '.join(names)}",
            )
        targets[f"{silo}.{table}"] = column
    return targets


def record_versions(
    context: dg.AssetExecutionContext,
    silos: Mapping[str, SiloResource],
    tables: tuple[tuple[str, str], ...],
) -> None:
    """Observe the version of every silo table the query reads, before it reads them: the
    asset's data provenance then names the versions it was built from (as the sources' own
    observations record them), so unchanged silos keep it fresh and a changed one marks it
    stale."""
    step = context.get_step_execution_context()
    name = context.assets_def.key.to_user_string()
    for silo, table in tables:
        version = silos[silo].version(table)
        observation = read_observation(table_asset_key(silo, table), version, {"read by": name})
        record_read(step, observation)


def _files_read(
    silos: Mapping[str, SiloResource], filters: Mapping[str, exp.Expression | None]
) -> list[dict[str, Any]]:
    """For each lake table read narrowed to the run's partition: files read of files present."""
    rows = []
    for target, condition in sorted(filters.items()):
        silo, _, table = target.partition(".")
        counted = files_in_partition(silos[silo], table, condition)
        if counted is not None:
            rows.append(
                {"silo table": target, "files read": counted[0], "files present": counted[1]}
            )
    return rows


def _code_version(
    sql: str,
    engine_region: str | None,
    policy: Mapping[str, SiloPolicy | TablePolicy],
    partition_columns: Mapping[str, str],
) -> str:
    """A digest of what decides the asset's value besides its sources' data: the SQL (as
    parsed, so layout and comments do not count), the engine's region, extra policies and
    partition columns."""
    parts = [
        parse_query(sql).sql(dialect="duckdb"),
        engine_region or "",
        *(f"{k}={v.model_dump_json()}" for k, v in sorted(policy.items())),
        *(f"{k}:{v}" for k, v in sorted(partition_columns.items())),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
