"""TPC-H over four silo kinds, in many layouts: federated vs co-located vs DuckDB's own ATTACH.

Run by hand (not in CI)::

    .venv/bin/python -m benchmarks.tpch_federated [--sf 1] [--layout default,pg-orders]
        [--random-layouts N --seed S] [--queries 1,3,5] [--repeats 3] [--skip-peer] [--skip-copy]

TPC-H data is generated with tpchgen-cli at ``--sf`` (cached under ``benchmarks/out/sf<N>/``). A
layout (``benchmarks.tpch.layouts``) places each of the eight tables in one of four silos: a
Parquet lake (``lake``), a throwaway PostgreSQL (``pg``), a SQLite file (``ref``) and a DuckDB file
(``wh``). Each silo is loaded once with every table any chosen layout puts there. Per layout and
query it measures the first (cold) run and the best of ``--repeats`` after it:

- co-located: DuckDB (the project's version) over the same Parquet files, all 8 tables as views in
  one database — the reference answer (run once, shared by every layout);
- federated: ``fed_assets.query(sql, silos)`` — result checked against the reference; bytes moved,
  planning time and the fragments' q-error from its result;
- peer: DuckDB 1.5.5 with its postgres and sqlite scanners ATTACHed, the DuckDB file ATTACHed and
  the lake as ``read_parquet`` views, in its own venv ``.venv-tools/duckdb155`` (a subprocess);
- copy-then-query: every referenced table read whole through its silo's ``read(table)`` into Arrow,
  then the query in a fresh in-memory DuckDB (one cold run unless ``--copy-repeats``).

Markdown goes to stdout and ``benchmarks/out/tpch_sf<N>.md`` (per-layout tables, then one line
per layout with the issue's goals marked met or missed); raw numbers in ``.json``; federated
fragments per layout in ``tpch_sf<N>_<layout>_plans.md``. A failing query records its error.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import shutil
import subprocess
import time
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.tpch import data, layouts
from benchmarks.tpch.queries import Query, load
from benchmarks.tpch.report import (
    Outcome,
    Row,
    check,
    layout_goals,
    raw,
    render_layout,
    render_plans,
    render_summary,
)
from fed_assets.silo import SiloResource
from tests.servers import start


# --------------------------------------------------------------------------- measuring
def measure(fn: Callable[[], Any], *, repeats: int, warmup: bool) -> tuple[Outcome, Any]:
    """Best time of ``repeats`` calls of ``fn`` after one more call, timed as the cold run
    (``first``) and counted in the best only when ``warmup`` is false."""
    try:
        started = time.perf_counter()
        value = fn()
        first = time.perf_counter() - started
        best: tuple[float, Any] | None = None if warmup else (first, value)
        for _ in range(max(repeats, 1) - (0 if warmup else 1)):
            started = time.perf_counter()
            value = fn()
            seconds = time.perf_counter() - started
            if best is None or seconds < best[0]:
                best = (seconds, value)
        assert best is not None
        return Outcome(seconds=best[0], first=first), best[1]
    except Exception as err:
        return Outcome(error=_error_text(err)), None


def run_colocated(rows: list[Row], tables: Path, repeats: int) -> None:
    """The reference: DuckDB over the same Parquet files, all 8 tables as views in one database."""
    with duckdb.connect() as con:
        for statement in data.parquet_views(tables):
            con.execute(statement)
        for row in rows:
            sql = row.query.colocated()
            outcome, table = measure(
                lambda sql=sql: con.sql(sql).to_arrow_table(), repeats=repeats, warmup=True
            )
            outcome.table = table
            row.runs["colocated"] = outcome
            _progress(row, "colocated")


def federated_api() -> tuple[Callable | None, str]:
    """``fed_assets.query`` if the project has it, else None and why not."""
    try:
        import fed_assets

        fn = getattr(fed_assets, "query", None)
        if fn is None or isinstance(fn, types.ModuleType):
            module = fn or importlib.import_module("fed_assets.query")
            fn = getattr(module, "query", None)
    except Exception as err:
        return None, f"fed_assets.query unavailable: {_error_text(err)}"
    if not callable(fn):
        return None, "fed_assets.query unavailable: no callable fed_assets.query"
    return fn, ""


def run_federated(
    rows: list[Row],
    silos: list[SiloResource],
    placement: Mapping[str, str],
    repeats: int,
    timeout_s: float,
) -> str:
    """Run every query through ``fed_assets.query``; returns why not when the API is missing."""
    fn, why = federated_api()
    if fn is None:
        for row in rows:
            row.runs["federated"] = Outcome(error="n/a")
        return why
    try:  # a per-query time limit where the API takes one
        options = (
            {"timeout_s": timeout_s} if "timeout_s" in inspect.signature(fn).parameters else {}
        )
    except (TypeError, ValueError):
        options = {}
    for row in rows:
        try:
            sql = row.query.federated(placement)
        except Exception as err:
            row.runs["federated"] = Outcome(error=_error_text(err))
            continue
        outcome, result = measure(
            lambda sql=sql: fn(sql, silos, **options), repeats=repeats, warmup=True
        )
        if result is not None:
            outcome.table = result.table
            outcome.extra = {
                "bytes_moved": getattr(result, "bytes_moved", None),
                "planning_ms": getattr(result, "planning_ms", None),
                "fragments": [_fragment(f) for f in getattr(result, "fragments", [])],
                # A shipped run's estimate is of its inputs, not of its result: left out.
                "q_error": max(
                    (f.q_error for f in result.fragments if f.id != "__shipped"), default=None
                ),
                "decisions": list(getattr(result.plan, "decisions", ()))
                + list(getattr(result, "decisions", ())),
                "sql": sql,
            }
        row.runs["federated"] = outcome
        _progress(row, "federated")
    return ""


def run_peer(
    rows: list[Row],
    server: Any,
    lake_root: Path,
    sqlite_path: Path,
    duckdb_path: Path,
    placement: Mapping[str, str],
    out: Path,
    repeats: int,
    timeout_s: float,
) -> None:
    """Run every query in DuckDB 1.5.5 (a subprocess of the peer venv) and collect its results."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    queries = []
    for row in rows:
        try:
            queries.append({"name": row.query.name, "sql": row.query.federated(placement)})
        except Exception as err:
            row.runs["peer"] = Outcome(error=_error_text(err))
    config = {
        "extensions": data.peer_extensions(),
        "postgres": data.postgres_dsn(server),
        "sqlite": str(sqlite_path),
        "duckdb": str(duckdb_path) if duckdb_path.exists() else None,
        "lake": {p.stem: str(p) for p in sorted(lake_root.glob("*.parquet"))},
        "out": str(out),
        "repeats": repeats,
        "timeout_s": timeout_s,
        "queries": queries,
    }
    script = Path(__file__).resolve().parent / "tpch" / "peer.py"
    try:
        subprocess.run(
            [str(data.PEER_VENV / "bin" / "python"), str(script)],
            input=json.dumps(config),
            text=True,
            check=True,
            timeout=timeout_s * (repeats + 1) * max(len(queries), 1) + 60,
        )
        timings = json.loads((out / "timings.json").read_text())
    except Exception as err:
        timings = {}
        failure = f"peer process failed: {_error_text(err)}"
    for row in rows:
        if "peer" in row.runs:
            continue
        entry = timings.get(row.query.name) or {"error": failure}
        if "error" in entry:
            row.runs["peer"] = Outcome(error=entry["error"])
        else:
            table = pq.read_table(out / f"{row.query.name}.parquet")
            row.runs["peer"] = Outcome(
                seconds=entry["seconds"], first=entry.get("first"), table=table
            )
        _progress(row, "peer")


def run_copy(
    rows: list[Row],
    silos: Mapping[str, SiloResource],
    placement: Mapping[str, str],
    repeats: int,
) -> None:
    """Copy-then-query: pull every referenced table whole into Arrow, then query in DuckDB."""
    for row in rows:
        query = row.query

        def copy_and_query(query: Query = query) -> tuple[pa.Table, int]:
            nbytes = 0
            with duckdb.connect() as con:
                for name in query.tables:
                    table = silos[placement[name]].read(name).read_all()
                    nbytes += table.nbytes
                    con.register(name, table)
                return con.sql(query.colocated()).to_arrow_table(), nbytes

        outcome, value = measure(copy_and_query, repeats=repeats, warmup=repeats > 1)
        if value is not None:
            outcome.table, outcome.extra["naive_bytes"] = value
        row.runs["copy"] = outcome
        _progress(row, "copy")


def naive_bytes(
    rows: list[Row], silos: Mapping[str, SiloResource], placement: Mapping[str, str]
) -> dict[str, int]:
    """Arrow bytes of every referenced table read whole (computed where copy did not run)."""
    per_table: dict[str, int] = {}
    for row in rows:
        for name in row.query.tables:
            if name not in per_table:
                try:
                    per_table[name] = silos[placement[name]].read(name).read_all().nbytes
                except Exception:
                    per_table[name] = 0
    return per_table


# --------------------------------------------------------------------------- main
def choose_layouts(names: str, random_n: int, seed: int) -> dict[str, dict[str, str]]:
    """The named layouts (all when ``names`` is empty and no random ones are asked for) plus
    ``random_n`` seeded random ones."""
    chosen: dict[str, dict[str, str]] = {}
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name not in layouts.LAYOUTS:
            raise SystemExit(f"unknown layout {name!r}: use one of {', '.join(layouts.LAYOUTS)}")
        chosen[name] = layouts.LAYOUTS[name]
    if not chosen and not random_n:
        chosen = dict(layouts.LAYOUTS)
    chosen.update(layouts.random_layouts(random_n, seed))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    parser.add_argument(
        "--layout", default="", help=f"comma-separated, of: {', '.join(layouts.LAYOUTS)}"
    )
    parser.add_argument("--random-layouts", type=int, default=0, help="seeded random layouts")
    parser.add_argument("--seed", type=int, default=12, help="seed of the random layouts")
    parser.add_argument("--queries", default="", help="comma-separated numbers, e.g. 1,3,5")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the cold one")
    parser.add_argument(
        "--copy-repeats", type=int, default=1, help="copy-then-query runs (warm-up when >1)"
    )
    parser.add_argument("--skip-peer", action="store_true", help="leave out DuckDB 1.5.5 ATTACH")
    parser.add_argument("--skip-copy", action="store_true", help="leave out copy-then-query")
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds per query before it is stopped (peer; federated where the API takes it)",
    )
    args = parser.parse_args()

    chosen = choose_layouts(args.layout, args.random_layouts, args.seed)
    numbers = tuple(int(n) for n in args.queries.split(",") if n.strip()) or None
    queries = load(numbers) if numbers else load()
    label = data.sf_label(args.sf)
    work = data.OUT / f"sf{label}"
    setup: list[str] = [f"- load average at start: {_load()}"]
    # Each file silo holds every table any named (or chosen) layout puts there, so runs with
    # different --layout options share one cached SQLite and DuckDB file.
    held = {
        silo: sorted(
            {
                t
                for layout in [*layouts.LAYOUTS.values(), *chosen.values()]
                for t, s in layout.items()
                if s == silo
            },
            key=data.TABLES.index,
        )
        for silo in layouts.SILO_KINDS
    }
    held["pg"] = [t for t in data.TABLES if any(layout[t] == "pg" for layout in chosen.values())]

    started = time.perf_counter()
    bindir = data.ensure_tools()
    tables, generated = data.generate(args.sf, bindir)
    setup.append(
        f"- generate (tpchgen-cli): {'cached' if generated is None else f'{generated:.1f} s'}"
    )
    sqlite_path, duckdb_path = work / "ref.sqlite", work / "wh.duckdb"
    loaded = data.build_sqlite(tables, sqlite_path, held["ref"])
    setup.append(f"- SQLite load: {'cached' if loaded is None else f'{loaded:.1f} s'}")
    loaded = data.build_duckdb(tables, duckdb_path, held["wh"])
    setup.append(f"- DuckDB file load: {'cached' if loaded is None else f'{loaded:.1f} s'}")

    reference = [Row(q) for q in queries]
    run_colocated(reference, tables, args.repeats)
    per_layout: dict[str, dict[str, Any]] = {}
    sections: list[str] = []
    dump: dict[str, Any] = {"sf": args.sf, "layouts": {}}
    server = start("postgres", work / "pg-server")
    try:
        loaded = data.load_postgres(tables, server, held["pg"])
        setup.append(f"- PostgreSQL load (ADBC ingest, keys, indexes, ANALYZE): {loaded:.1f} s")
        setup.append(f"- setup total: {time.perf_counter() - started:.1f} s")
        for name, placement in chosen.items():
            rows = [Row(r.query, runs={"colocated": r.runs["colocated"]}) for r in reference]
            lake_root = work / "lakes" / name
            data.build_lake(tables, lake_root, data.placed(placement, "lake"))
            silos = make_silos(lake_root, server, sqlite_path, duckdb_path)
            load_before = _load()
            if not args.skip_peer:
                run_peer(
                    rows,
                    server,
                    lake_root,
                    sqlite_path,
                    duckdb_path,
                    placement,
                    work / "peer",
                    args.repeats,
                    args.timeout,
                )
            run_federated(rows, list(silos.values()), placement, args.repeats, args.timeout)
            if not args.skip_copy:
                run_copy(rows, silos, placement, args.copy_repeats)
            check(rows)
            per_layout[name] = layout_goals(rows)
            title = (
                f"### Layout {name}: {layouts.describe(placement)}\n\n"
                f"Load average before / after: {load_before} / {_load()}"
            )
            sections.append(render_layout(rows, title=title))
            dump["layouts"][name] = {
                "placement": placement,
                "goals": per_layout[name],
                "queries": raw(rows),
            }
            (data.OUT / f"tpch_sf{label}_{name}_plans.md").write_text(render_plans(rows))
            # Written after every layout: a run cut short keeps the layouts it finished.
            _write(label, args.repeats, per_layout, setup, sections, dump)
            for silo in silos.values():
                close = getattr(silo, "close", None)
                if callable(close):
                    close()
    finally:
        server.stop()

    print(_write(label, args.repeats, per_layout, setup, sections, dump))


def _write(label, repeats, per_layout, setup, sections, dump) -> str:
    """The Markdown report and the JSON of the layouts done so far, to ``benchmarks/out/``."""
    summary = render_summary(
        per_layout,
        title=(
            f"## TPC-H SF{label}, {len(per_layout)} layouts; first (cold) run, then best of "
            f"{repeats}; co-located = DuckDB {duckdb.__version__} over the same Parquet, "
            f"peer = DuckDB 1.5.5 ATTACH"
        ),
    )
    report = "\n".join([summary, *setup, "", *sections])
    data.OUT.mkdir(parents=True, exist_ok=True)
    (data.OUT / f"tpch_sf{label}.md").write_text(report)
    (data.OUT / f"tpch_sf{label}.json").write_text(json.dumps(dump, indent=1, default=str))
    return report


# Seconds the DuckDB file silo stays open after a query: longer than the gap between two queries
# of one layout, so that, like the peer's ATTACH, the file is opened once per layout.
KEEP_OPEN_S = 30.0


def make_silos(
    lake_root: Path, server: Any, sqlite_path: Path, duckdb_path: Path
) -> dict[str, SiloResource]:
    from resources.silos.duckdb import DuckDBSilo
    from resources.silos.parquet import ParquetSilo
    from resources.silos.postgres import PostgresSilo
    from resources.silos.sqlite import SQLiteSilo

    return {
        "lake": ParquetSilo(name="lake", root=str(lake_root)),
        "pg": PostgresSilo(name="pg", **data.postgres_settings(server)),
        "ref": SQLiteSilo(name="ref", path=str(sqlite_path)),
        # Held open between queries, as the peer holds its ATTACH for the whole layout.
        "wh": DuckDBSilo(name="wh", path=str(duckdb_path), keep_open_s=KEEP_OPEN_S),
    }


def _load() -> str:
    """The 1-minute load average (other engineers' tests make timings noisy)."""
    return f"{os.getloadavg()[0]:.2f}"


def _fragment(fragment: Any) -> dict[str, Any]:
    return {
        key: getattr(fragment, key, None)
        for key in ("silo", "sql", "rows", "bytes", "seconds", "est_rows", "est_bytes")
    }


def _num(value: Any, digits: int = 0) -> str:
    """A number for humans (thousands separated), or "?" when unknown."""
    if not isinstance(value, int | float):
        return "?"
    return f"{value:,.{digits}f}"


def _mb(nbytes: int | None) -> str:
    return "" if nbytes is None else f"{nbytes / 1e6:.3f}"


def _error_text(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:500]


def _progress(row: Row, engine: str) -> None:
    outcome = row.runs[engine]
    shown = f"{outcome.seconds:.3f} s" if outcome.seconds is not None else outcome.error
    print(f"{row.query.name} {engine}: {shown}", flush=True)


if __name__ == "__main__":
    main()
