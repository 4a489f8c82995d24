"""Run a plan: fragments concurrently in their silos, Arrow into an embedded DuckDB, residual above.

- Fragments without a semi-join input start at once, in threads; a semi-join target starts when
  all its sources have finished, with their distinct keys as ``IN`` filters.
- Each fragment has a time bound (``timeout_s``, lowered by a silo's ``statement_timeout_s``), and the query one in
  all (``query_timeout_s``); a fragment past its bound is cancelled in its silo (the silo's
  ``cancel``: PostgreSQL gets a cancel request) and the error names silo, fragment and bound;
  silos that can also enforce it server-side do (PostgreSQL's ``statement_timeout``). Transient
  failures (a silo unreachable) are retried with backoff;
  on any failure the fragments not yet started are cancelled and the error names the silo.
- The residual query runs on a cursor of the process's residual DuckDB (``fed_assets.engine``),
  with a memory limit and a spill folder.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from fed_assets import engine as fed_engine
from fed_assets.errors import FedAssetsError, SiloTimeoutError, SiloUnreachableError
from fed_assets.keyed import keyed_sql, keys_tables
from fed_assets.query.adaptive import materialise, pass_through, semi_join_keys
from fed_assets.query.model import FragmentPlan, FragmentRun, Plan, QueryResult, SemiJoin
from fed_assets.residency import Route
from fed_assets.silo import DEFAULT_TIMEOUT_S, SiloResource, time_bound

# Seconds one fragment may run before the query gives up on it (and cancels it in its silo):
# the silos' own default bound.
FRAGMENT_TIMEOUT_S = DEFAULT_TIMEOUT_S
# Seconds a whole query may take, fragments one after another included (semi-join chains).
QUERY_TIMEOUT_S = 900.0
# Retries of a fragment whose silo was unreachable, and the first backoff (doubling each time).
RETRIES = 2
BACKOFF_S = 0.5
# Memory the embedded engine may use before spilling to its temporary folder.
MEMORY_LIMIT = "4GB"
# Id of the run that executes the residual query inside its host silo (shipped plans).
SHIPPED_ID = "__shipped"
# Fragments running at once: enough to overlap several silos' latency on 2 cores.
MAX_PARALLEL = 8
# Threads the process keeps for fragments, shared by the queries it runs at once (each still at
# most MAX_PARALLEL): starting a thread took 6 ms here, paid per fragment of every query when each
# query made its own pool.
SHARED_WORKERS = 4 * MAX_PARALLEL

_shared_lock = threading.Lock()
_shared: cf.ThreadPoolExecutor | None = None


def _fragment_pool() -> cf.ThreadPoolExecutor:
    """The process's fragment threads (started on first use, idle ones kept)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = cf.ThreadPoolExecutor(
                max_workers=SHARED_WORKERS, thread_name_prefix="fed-fragment"
            )
        return _shared


Progress = Callable[[str, FragmentPlan, dict], None]


class ResidualQueryError(FedAssetsError):
    """The part of the query evaluated above the silos failed (types, functions, ...)."""


def execute(
    plan: Plan,
    silos: Mapping[str, SiloResource],
    *,
    timeout_s: float = FRAGMENT_TIMEOUT_S,
    query_timeout_s: float = QUERY_TIMEOUT_S,
    memory_limit: str = MEMORY_LIMIT,
    progress: Progress | None = None,
) -> QueryResult:
    """Run ``plan`` against ``silos`` and return the result with what moved where.

    Args:
        timeout_s: seconds one fragment may run (a silo's ``statement_timeout_s`` may lower it).
        query_timeout_s: seconds all the fragments together may take.

    Raises:
        SiloTimeoutError: a bound passed; the running statements were cancelled in their silos.
    """
    started = time.perf_counter()
    tables, runs, key_routes, decisions = _run_fragments(
        plan, silos, timeout_s=timeout_s, query_timeout_s=query_timeout_s, progress=progress
    )
    fetched = time.perf_counter()
    if plan.shipped_to is not None:
        table = tables[SHIPPED_ID]  # the host silo ran the residual query itself
    elif (passed := pass_through(plan, tables)) is not None:
        table = passed  # the residual would only copy the one fragment's rows
    else:
        left = query_timeout_s - (time.perf_counter() - started)
        copy, decided = materialise(tables)
        if decided:
            decisions.append(decided)
        table = _run_residual(
            plan, tables, memory_limit=memory_limit, seconds=left, materialise=copy
        )
    done = time.perf_counter()
    return QueryResult(
        table=table,
        plan=plan,
        fragments=tuple(
            runs[fid] for fid in [f.id for f in plan.fragments] + [SHIPPED_ID] if fid in runs
        ),
        stage_seconds={
            "planning": plan.planning_ms / 1000,
            "fragments": fetched - started,
            "residual": done - fetched,
        },
        routes=tuple(_fragment_routes(plan, runs)) + tuple(key_routes),
        decisions=plan.decisions + tuple(decisions),
    )


def _fragment_routes(plan: Plan, runs: Mapping[str, FragmentRun]) -> list[Route]:
    """A route per fragment result (and a shipped plan's result), with what actually moved."""
    routes = []
    for fragment in plan.fragments:
        run = runs.get(fragment.id)
        if run is None:  # a hosted fragment: it ran inside the shipped plan, nothing moved
            continue
        route = Route(
            fragment.kind,
            fragment.silo,
            fragment.tables,
            run.source_region,
            run.destination_region,
            run.rule,
        )
        routes.append(route.moved(run.rows, run.bytes, via=fragment.id))
    shipped = runs.get(SHIPPED_ID)
    if shipped is not None:
        tables = tuple(t for f in plan.fragments if f.silo == plan.shipped_to for t in f.tables)
        route = Route(
            "rows",
            shipped.silo,
            tables,
            shipped.source_region,
            shipped.destination_region,
            shipped.rule,
        )
        routes.append(route.moved(shipped.rows, shipped.bytes, via=SHIPPED_ID))
    return routes


def _run_fragments(plan, silos, *, timeout_s, query_timeout_s, progress):
    by_target: dict[str, list[SemiJoin]] = {}
    for sj in plan.semi_joins:
        by_target.setdefault(sj.target, []).append(sj)
    hosted = [f for f in plan.fragments if f.silo == plan.shipped_to]
    tables: dict[str, pa.Table] = {}
    runs: dict[str, FragmentRun] = {}
    key_routes: list[Route] = []
    decisions: list[str] = []
    query_deadline = time.monotonic() + query_timeout_s
    threads: dict[str, int] = {}  # fragment id → the thread running it (to cancel it)

    def keys_for(fragment_id: str) -> dict[str, pa.Array]:
        keys, decided = semi_join_keys(by_target.get(fragment_id, []), tables)
        decisions.extend(decided)
        key_routes.extend(_key_routes(plan, by_target.get(fragment_id, []), keys))
        return keys

    pool = _fragment_pool()
    running = threading.BoundedSemaphore(MAX_PARALLEL)  # this query's share of the pool
    pending: dict[cf.Future, _Pending] = {}

    def start(fid: str, silo: SiloResource, work: Callable, *args) -> None:
        now = time.monotonic()
        own = min(timeout_s, silo.statement_timeout_s or timeout_s)
        if now + own <= query_deadline:
            bound = _Pending(fid, silo.name, now + own, own, _fragment_setting(silo, timeout_s))
        else:
            bound = _Pending(fid, silo.name, query_deadline, query_timeout_s, "query_timeout_s")
        seconds = own if bound.seconds == own else max(bound.deadline - now, 0.001)
        future = pool.submit(_limited, running, _bounded, work, fid, threads, seconds, *args)
        pending[future] = bound

    def submit(fragment: FragmentPlan, keys: dict[str, pa.Array] | None = None) -> None:
        if progress:
            progress("start", fragment, {})
        silo = silos[fragment.silo]
        start(fragment.id, silo, _run_one, fragment, silo, plan, keys or {})

    def ship_when_ready() -> None:
        """Once every other fragment is in, the host silo runs the rest of the query."""
        if hosted and not pending and not waiting and SHIPPED_ID not in tables:
            keys = {f.id: keys_for(f.id) for f in hosted}
            silo = silos[plan.shipped_to]
            start(SHIPPED_ID, silo, _run_shipped, plan, hosted, silo, dict(tables), keys)

    try:
        hosted_ids = {f.id for f in hosted}
        for fragment in plan.fragments:
            if fragment.id not in by_target and fragment.id not in hosted_ids:
                submit(fragment)
        waiting = set(by_target) - hosted_ids
        ship_when_ready()
        while pending:
            first = min(pending.values(), key=lambda p: p.deadline)
            left = max(0.0, first.deadline - time.monotonic())
            done, _ = cf.wait(pending, timeout=left, return_when=cf.FIRST_COMPLETED)
            if not done:
                raise SiloTimeoutError(
                    f"silo '{first.silo}', fragment {first.id}",
                    f"no result within its time bound of {first.seconds:g} s ({first.setting}); "
                    "the statement was cancelled in the silo",
                    f"raise {first.setting}, or make the query cheaper for the silo (filter or "
                    "aggregate more); check the silo's load",
                )
            for future in done:
                fid = pending.pop(future).id
                table, run = future.result()
                tables[fid], runs[fid] = table, run
                if progress and fid != SHIPPED_ID:
                    progress("done", plan.fragment(fid), {"rows": run.rows, "bytes": run.bytes})
            for target in sorted(waiting):
                if all(sj.source in tables for sj in by_target[target]):
                    waiting.discard(target)
                    submit(plan.fragment(target), keys_for(target))
            ship_when_ready()
    except BaseException:
        # Abandoned: nothing more starts, and what runs is cancelled in its silo, not left there.
        for future, bound in pending.items():
            if not future.cancel() and bound.id in threads and bound.silo in silos:
                silos[bound.silo].cancel(threads[bound.id])
        raise
    return tables, runs, key_routes, decisions


def _key_routes(plan: Plan, joins: list[SemiJoin], keys: Mapping[str, pa.Array]) -> list[Route]:
    """A route per key list sent: from the source fragment's silo into the target's region."""
    routes = []
    for sj in joins:
        values = keys.get(sj.target_column)
        if values is None:
            continue  # too many keys: not sent, the join above applies them
        source, target = plan.fragment(sj.source), plan.fragment(sj.target)
        route = Route(
            "keys", source.silo, source.tables, source.source_region, target.source_region, sj.rule
        )
        routes.append(route.moved(len(values), values.nbytes, via=f"{sj.source} → {sj.target}"))
    return routes


@dataclass(frozen=True)
class _Pending:
    """A running fragment's time bound: when it ends, how long it is, which setting set it."""

    id: str
    silo: str
    deadline: float
    seconds: float
    setting: str


def _fragment_setting(silo: SiloResource, timeout_s: float) -> str:
    if silo.statement_timeout_s is not None and silo.statement_timeout_s < timeout_s:
        return f"the silo's statement_timeout_s={silo.statement_timeout_s:g}"
    return f"timeout_s={timeout_s:g} on query() or federated_asset"


def _limited(running: threading.BoundedSemaphore, work: Callable, *args):
    """``work(*args)`` once one of the query's ``MAX_PARALLEL`` places is free."""
    with running:
        return work(*args)


def _bounded(work: Callable, fid: str, threads: dict[str, int], seconds: float, *args):
    """``work(*args)`` with the silos' queries bounded to ``seconds``; records its thread."""
    threads[fid] = threading.get_ident()
    with time_bound(seconds):
        return work(*args)


def _run_one(
    fragment: FragmentPlan,
    silo: SiloResource,
    plan: Plan,
    keys: Mapping[str, pa.Array],
) -> tuple[pa.Table, FragmentRun]:
    sql = fragment.sql
    for column, values in keys.items():  # for the record; the keys themselves can be many
        sql += f"\n-- semi-join filter: {column} IN <{len(values):,} keys>"
    if keys:
        table, seconds, attempts = _with_retries(
            silo, lambda: silo.scan_keyed(fragment.sql, keys).read_all()
        )
    else:
        table, seconds, attempts = _with_retries(silo, lambda: silo.scan(sql).read_all())
    return table, FragmentRun(
        id=fragment.id,
        silo=fragment.silo,
        sql=sql,
        rows=table.num_rows,
        bytes=table.nbytes,
        seconds=seconds,
        est_rows=fragment.estimate.rows,
        est_bytes=fragment.estimate.bytes,
        source_region=fragment.source_region,
        destination_region=plan.fragments_go_to,
        rule=fragment.rule,
        attempts=attempts,
        semi_join_keys=sum(len(v) for v in keys.values()) if keys else None,
    )


def _run_shipped(
    plan: Plan,
    hosted: list[FragmentPlan],
    silo: SiloResource,
    shipped: dict[str, pa.Table],
    keys: Mapping[str, Mapping[str, pa.Array]],
) -> tuple[pa.Table, FragmentRun]:
    """The residual query inside the host silo: its fragments as CTEs (with their semi-join keys
    as tables), the other fragments' results as tables shipped in."""
    inputs = shipped
    ctes = []
    for fragment in hosted:
        sql = fragment.sql
        if keys.get(fragment.id):
            names, key_tables = keys_tables(keys[fragment.id], prefix=f"{fragment.id}_keys")
            sql = keyed_sql(sql, "duckdb", names)
            inputs.update(key_tables)
        ctes.append(f'"{fragment.id}" AS ({sql})')
    sql = f"WITH {', '.join(ctes)} {plan.residual}"
    table, seconds, attempts = _with_retries(silo, lambda: silo.scan_with(sql, inputs).read_all())
    region = hosted[0].source_region
    return table, FragmentRun(
        id=SHIPPED_ID,
        silo=silo.name,
        sql=sql,
        rows=table.num_rows,
        bytes=table.nbytes,
        seconds=seconds,
        est_rows=sum(f.estimate.rows for f in hosted),
        est_bytes=sum(f.estimate.bytes for f in hosted),
        source_region=region,
        destination_region=plan.engine_region or "engine",
        rule="; ".join(sorted({f.rule for f in hosted})) + "; the query's result only",
        attempts=attempts,
        semi_join_keys=sum(len(v) for k in keys.values() for v in k.values()) or None,
    )


def _with_retries(silo: SiloResource, read: Callable[[], pa.Table]) -> tuple[pa.Table, float, int]:
    """``read()``, retried with backoff while the silo is unreachable; (table, seconds, tries)."""
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        try:
            return read(), time.perf_counter() - started, attempt
        except SiloUnreachableError:
            if attempt > RETRIES:
                raise
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        except FedAssetsError:
            raise
        except Exception as err:  # a driver error the silo did not translate
            raise silo.wrap_error(err) from err


def _run_residual(
    plan: Plan,
    tables: Mapping[str, pa.Table],
    *,
    memory_limit: str,
    seconds: float,
    materialise: bool = False,
) -> pa.Table:
    """The residual query over the fragments' results; interrupted after ``seconds`` (what is
    left of the query's bound).

    Args:
        materialise: copy the inputs into (the cursor's temporary) DuckDB tables first, so the
            join order sees their statistics; else they are registered Arrow scans.
    """
    con = fed_engine.cursor("residual", memory_limit=memory_limit)
    timer = threading.Timer(max(seconds, 0.0), con.interrupt)
    timer.daemon = True
    try:
        timer.start()
        for fragment_id, table in tables.items():
            if materialise:
                con.register(f"{fragment_id}__arrow", table)
                con.execute(
                    f'CREATE TEMP TABLE "{fragment_id}" AS SELECT * FROM "{fragment_id}__arrow"'
                )
                con.unregister(f"{fragment_id}__arrow")
            else:
                con.register(fragment_id, table)
        return con.sql(plan.residual).to_arrow_table()
    except duckdb.InterruptException:
        raise SiloTimeoutError(
            "query (embedded engine)",
            f"the residual query was stopped at the end of the query's time bound "
            f"({seconds:.3g} s were left of query_timeout_s)",
            "raise query_timeout_s on query() or federated_asset, or aggregate or filter more "
            "inside the silos so that less is left to the engine",
        ) from None
    except duckdb.OutOfMemoryException as err:
        inputs = sum(t.nbytes for t in tables.values())
        estimated = sum(f.estimate.bytes for f in plan.fragments)
        raise ResidualQueryError(
            "query (embedded engine)",
            f"out of memory: the residual query needed more than memory_limit={memory_limit} "
            f"(its inputs hold {inputs:,} bytes; the plan estimated {estimated:,.0f} bytes; "
            f"{str(err).splitlines()[0]})",
            "raise memory_limit (query(..., memory_limit='8GB')), or aggregate or filter more "
            "inside the silos so that less reaches the engine",
        ) from None
    except duckdb.Error as err:
        text = str(err).splitlines()[0]
        fix = "check the query"
        if "Cannot compare" in text or "explicit cast" in text:
            fix = "the join keys come from different silos with different types: CAST one side"
        raise ResidualQueryError("query (embedded engine)", text, fix) from None
    finally:
        timer.cancel()
        con.close()
