"""TPC-H over three silos: federated vs co-located DuckDB vs DuckDB's own ATTACH vs copy-then-query.

Run by hand (not in CI)::

    .venv/bin/python -m benchmarks.tpch_federated [--sf 1] [--queries 1,3,5] [--repeats 3]
        [--skip-peer] [--skip-copy]

TPC-H data is generated with tpchgen-cli at ``--sf`` (cached under ``benchmarks/out/sf<N>/``) and
spread over a Parquet lake (``lake``), a throwaway PostgreSQL (``pg``) and a SQLite file (``ref``)
as ``benchmarks.tpch.data.PLACEMENT`` says. Per query it measures, best of ``--repeats`` after a
warm-up:

- co-located: DuckDB (the project's version) with all 8 tables native in one file — the reference
  answer;
- federated: ``fed_assets.query(sql, silos)`` — result checked against the reference; bytes moved
  out of silos and planning time from its result;
- peer: DuckDB 1.5.5 with its postgres and sqlite scanners ATTACHed and the lake as
  ``read_parquet`` views, in its own venv ``.venv-tools/duckdb155`` (a subprocess);
- copy-then-query: every referenced table read whole through its silo's ``read(table)`` into Arrow,
  then the query in a fresh in-memory DuckDB (copy included in the time; one run, no warm-up,
  unless ``--copy-repeats``); the Arrow bytes of those tables are the "naive pull".

A Markdown table goes to stdout and ``benchmarks/out/tpch_sf<N>.md`` (raw numbers in ``.json``,
federated fragments in ``_plans.md``). A failing query records its error instead of aborting.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import shutil
import subprocess
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.tpch import data
from benchmarks.tpch.compare import compare
from benchmarks.tpch.queries import Query, load
from fed_assets.silo import SiloResource
from tests.servers import start

ENGINES = ("colocated", "federated", "peer", "copy")
# Targets from the issue, at SF1.
TARGET_FED_VS_COLOCATED = 1.5
TARGET_COPY_VS_FED = 5.0
TARGET_BYTES_SHARE = 0.05
TARGET_PLANNING_MS = 100.0
# Fragment SQL in the plans file is cut here: semi-join key lists run to hundreds of kilobytes.
PLAN_SQL_CHARS = 2000


@dataclass
class Outcome:
    """One engine's run of one query: best seconds and the result, or the error."""

    seconds: float | None = None
    table: pa.Table | None = None
    error: str | None = None
    equal: str | None = None
    """None when not compared; "yes", or why the result differs from the reference."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    query: Query
    runs: dict[str, Outcome] = field(default_factory=dict)


# --------------------------------------------------------------------------- measuring
def measure(fn: Callable[[], Any], *, repeats: int, warmup: bool) -> tuple[Outcome, Any]:
    """Best time of ``repeats`` calls of ``fn`` (after one untimed call when ``warmup``)."""
    try:
        if warmup:
            fn()
        best: tuple[float, Any] | None = None
        for _ in range(max(repeats, 1)):
            started = time.perf_counter()
            value = fn()
            seconds = time.perf_counter() - started
            if best is None or seconds < best[0]:
                best = (seconds, value)
        assert best is not None
        return Outcome(seconds=best[0]), best[1]
    except Exception as err:
        return Outcome(error=_error_text(err)), None


def run_colocated(rows: list[Row], path: Path, repeats: int) -> None:
    with duckdb.connect(str(path), read_only=True) as con:
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
            row.runs["peer"] = Outcome(seconds=entry["seconds"], table=table)
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


# --------------------------------------------------------------------------- reporting
def check(rows: list[Row]) -> None:
    """Compare every engine's result with the co-located reference."""
    for row in rows:
        reference = row.runs.get("colocated")
        for engine in ("federated", "peer", "copy"):
            outcome = row.runs.get(engine)
            if outcome is None or outcome.table is None:
                continue
            if reference is None or reference.table is None:
                outcome.equal = "no reference"
                continue
            try:
                why = compare(
                    reference.table,
                    outcome.table,
                    order_keys=row.query.order_keys,
                    types=engine == "federated",  # ours must give co-located's schema
                )
            except Exception as err:
                why = f"comparison failed: {_error_text(err)}"
            outcome.equal = why or "yes"


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def paired(rows: list[Row], a: str, b: str) -> tuple[float | None, float | None, int]:
    """Geo-means of engines ``a`` and ``b`` over the queries where both ran, and how many."""
    both = [
        (r.runs[a].seconds, r.runs[b].seconds)
        for r in rows
        if a in r.runs and b in r.runs and r.runs[a].seconds and r.runs[b].seconds
    ]
    return geomean([x for x, _ in both]), geomean([y for _, y in both]), len(both)


def render(
    rows: list[Row], *, title: str, setup: list[str], table_bytes: dict[str, int], fed_note: str
) -> tuple[str, dict]:
    notes: list[str] = []

    def cell(row: Row, engine: str) -> str:
        outcome = row.runs.get(engine)
        if outcome is None:
            return "skipped"
        if outcome.error == "n/a":
            return "n/a"
        if outcome.error is not None:
            notes.append(f"{row.query.name} {engine}: {outcome.error}")
            return f"error [{len(notes)}]"
        text = f"{outcome.seconds:.3f}"
        if outcome.equal not in (None, "yes") and engine != "federated":
            notes.append(f"{row.query.name} {engine} result differs: {outcome.equal}")
            text += f" ≠[{len(notes)}]"
        return text

    lines = [
        title,
        "",
        *setup,
        "",
        "| query | equal? | co-located s | federated s | fed/co-loc | peer s | copy-then-query s "
        "| bytes moved MB | naive pull MB | % | planning ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    raw: dict[str, Any] = {"queries": {}}
    for row in rows:
        fed = row.runs.get("federated", Outcome(error="n/a"))
        colocated = row.runs.get("colocated")
        naive = sum(table_bytes.get(t, 0) for t in row.query.tables)
        moved = fed.extra.get("bytes_moved")
        planning = fed.extra.get("planning_ms")
        if fed.equal is None:
            equal = "n/a" if fed.error == "n/a" else "—"
        elif fed.equal == "yes":
            equal = "yes"
        else:
            notes.append(f"{row.query.name} federated result differs: {fed.equal}")
            equal = f"no [{len(notes)}]"
        ratio = (
            f"{fed.seconds / colocated.seconds:.2f}"
            if fed.seconds and colocated and colocated.seconds
            else ""
        )
        lines.append(
            f"| {row.query.name} | {equal} | {cell(row, 'colocated')} | {cell(row, 'federated')} "
            f"| {ratio} | {cell(row, 'peer')} | {cell(row, 'copy')} "
            f"| {_mb(moved)} | {_mb(naive)} "
            f"| {f'{100 * moved / naive:.2f}' if moved is not None and naive else ''} "
            f"| {f'{planning:.1f}' if planning is not None else ''} |"
        )
        raw["queries"][row.query.name] = {
            engine: {
                "seconds": o.seconds,
                "error": o.error,
                "equal": o.equal,
                "rows": None if o.table is None else o.table.num_rows,
                **{k: v for k, v in o.extra.items() if k not in ("fragments", "sql")},
            }
            for engine, o in row.runs.items()
        } | {"naive_bytes": naive}

    summary, targets = summarise(rows, table_bytes)
    raw["summary"] = targets
    lines += ["", *summary]
    if fed_note:
        lines += ["", f"Federated column: {fed_note}."]
    if notes:
        lines += ["", "Notes:", *(f"{i}. {text}" for i, text in enumerate(notes, 1))]
    return "\n".join(lines) + "\n", raw


def summarise(rows: list[Row], table_bytes: dict[str, int]) -> tuple[list[str], dict]:
    def runs(engine: str) -> list[Outcome]:
        return [r.runs[engine] for r in rows if engine in r.runs]

    n = len(rows)
    fed_equal = sum(o.equal == "yes" for o in runs("federated"))
    peer_equal = sum(o.equal == "yes" for o in runs("peer"))
    copy_equal = sum(o.equal == "yes" for o in runs("copy"))
    geo = {e: geomean([o.seconds for o in runs(e) if o.seconds]) for e in ENGINES}
    ran = {e: sum(o.seconds is not None for o in runs(e)) for e in ENGINES}
    c_geo, f_geo, n_cf = paired(rows, "colocated", "federated")
    p_geo, f2_geo, n_pf = paired(rows, "peer", "federated")
    k_geo, f3_geo, n_kf = paired(rows, "copy", "federated")
    moved = naive = 0
    planning: list[float] = []
    for row in rows:
        fed = row.runs.get("federated")
        if fed and fed.extra.get("bytes_moved") is not None:
            moved += fed.extra["bytes_moved"]
            naive += sum(table_bytes.get(t, 0) for t in row.query.tables)
        if fed and fed.extra.get("planning_ms") is not None:
            planning.append(fed.extra["planning_ms"])

    def fmt(v: float | None, digits: int = 3) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}"

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "missed")

    fed_vs_co = f_geo / c_geo if f_geo and c_geo else None
    fed_vs_peer = f2_geo / p_geo if f2_geo and p_geo else None
    copy_vs_fed = k_geo / f3_geo if k_geo and f3_geo else None
    share = moved / naive if naive else None
    worst_plan = max(planning) if planning else None
    lines = [
        f"Geometric-mean seconds (queries each engine finished): co-located {fmt(geo['colocated'])} "
        f"({ran['colocated']}/{n}), federated {fmt(geo['federated'])} ({ran['federated']}/{n}), "
        f"peer {fmt(geo['peer'])} ({ran['peer']}/{n}), copy-then-query {fmt(geo['copy'])} "
        f"({ran['copy']}/{n}).",
        "Total seconds: "
        + ", ".join(
            f"{label} {sum(o.seconds for o in runs(e) if o.seconds):.2f}"
            for e, label in zip(
                ENGINES, ("co-located", "federated", "peer", "copy-then-query"), strict=True
            )
        )
        + ".",
        f"Equal to co-located: federated {fed_equal}/{n}, peer {peer_equal}/{n}, "
        f"copy-then-query {copy_equal}/{n}.",
        (
            f"Bytes moved: {_mb(moved)} MB of a naive pull of {_mb(naive)} MB ({100 * share:.2f}%)."
            if share is not None
            else "Bytes moved: n/a (no federated run reported them); naive pull of all queries "
            f"{_mb(sum(sum(table_bytes.get(t, 0) for t in r.query.tables) for r in rows))} MB."
        ),
        "",
        "| target (SF1) | value | verdict |",
        "|---|---|---|",
        f"| federated equal to co-located: {n}/{n} | {fed_equal}/{n} "
        f"| {verdict(fed_equal == n if runs('federated') and ran['federated'] else None)} |",
        f"| geo-mean federated / co-located ≤ {TARGET_FED_VS_COLOCATED} | {fmt(fed_vs_co, 2)}× "
        f"over {n_cf} | {verdict(None if fed_vs_co is None else fed_vs_co <= TARGET_FED_VS_COLOCATED)} |",
        f"| geo-mean federated below the DuckDB-attach peer | {fmt(fed_vs_peer, 2)}× over {n_pf} "
        f"| {verdict(None if fed_vs_peer is None else fed_vs_peer < 1)} |",
        f"| copy-then-query / federated ≥ {TARGET_COPY_VS_FED} | {fmt(copy_vs_fed, 1)}× over {n_kf} "
        f"| {verdict(None if copy_vs_fed is None else copy_vs_fed >= TARGET_COPY_VS_FED)} |",
        f"| bytes moved ≤ {100 * TARGET_BYTES_SHARE:.0f}% of naive pull "
        f"| {fmt(None if share is None else 100 * share, 2)}% "
        f"| {verdict(None if share is None else share <= TARGET_BYTES_SHARE)} |",
        f"| planning ≤ {TARGET_PLANNING_MS:.0f} ms per query | max {fmt(worst_plan, 1)} ms "
        f"| {verdict(None if worst_plan is None else worst_plan <= TARGET_PLANNING_MS)} |",
    ]
    targets = {
        "geomean_s": geo,
        "fed_vs_colocated": fed_vs_co,
        "fed_vs_peer": fed_vs_peer,
        "copy_vs_fed": copy_vs_fed,
        "bytes_moved": moved,
        "naive_bytes": naive,
        "bytes_share": share,
        "max_planning_ms": worst_plan,
        "equal": {"federated": fed_equal, "peer": peer_equal, "copy": copy_equal, "of": n},
    }
    return lines, targets


def render_plans(rows: list[Row]) -> str:
    """The federated fragments of every query (silo, rows, bytes, estimates, SQL)."""
    out = ["# Federated fragments", ""]
    for row in rows:
        fed = row.runs.get("federated")
        if fed is None or not fed.extra:
            continue
        out += [
            f"## {row.query.name} — planning {_num(fed.extra.get('planning_ms'), 1)} ms, "
            f"{_num(fed.extra.get('bytes_moved'))} bytes moved, best {_num(fed.seconds, 3)} s",
            "",
        ]
        for f in fed.extra.get("fragments", []):
            sql = str(f["sql"])
            if len(sql) > PLAN_SQL_CHARS:
                sql = sql[:PLAN_SQL_CHARS] + f" … ({len(sql):,} characters)"
            out += [
                f"- `{f['silo']}`: {_num(f['rows'])} rows (est. {_num(f['est_rows'])}), "
                f"{_num(f['bytes'])} bytes (est. {_num(f['est_bytes'])}), "
                f"{_num(f['seconds'], 3)} s",
                "",
                "  ```sql",
                *(f"  {line}" for line in sql.splitlines()),
                "  ```",
            ]
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    parser.add_argument("--queries", default="", help="comma-separated numbers, e.g. 1,3,5")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after a warm-up")
    parser.add_argument(
        "--copy-repeats", type=int, default=1, help="copy-then-query runs (warm-up when >1)"
    )
    parser.add_argument("--skip-peer", action="store_true", help="leave out DuckDB 1.5.5 ATTACH")
    parser.add_argument("--skip-copy", action="store_true", help="leave out copy-then-query")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds per query before it is stopped (peer; federated where the API takes it)",
    )
    args = parser.parse_args()

    numbers = tuple(int(n) for n in args.queries.split(",") if n.strip()) or None
    rows = [Row(q) for q in (load(numbers) if numbers else load())]
    placement = data.PLACEMENT
    label = data.sf_label(args.sf)
    work = data.OUT / f"sf{label}"
    setup: list[str] = []

    started = time.perf_counter()
    bindir = data.ensure_tools()
    tables, generated = data.generate(args.sf, bindir)
    setup.append(
        f"- generate (tpchgen-cli): {'cached' if generated is None else f'{generated:.1f} s'}"
    )
    lake_root = work / "lake"
    data.build_lake(tables, lake_root, data.placed(placement, "lake"))
    colocated_path = work / "colocated.duckdb"
    loaded = data.build_colocated(tables, colocated_path)
    setup.append(f"- co-located DuckDB load: {'cached' if loaded is None else f'{loaded:.1f} s'}")
    sqlite_path = work / "ref.sqlite"
    loaded = data.build_sqlite(tables, sqlite_path, data.placed(placement, "ref"))
    setup.append(f"- SQLite load: {'cached' if loaded is None else f'{loaded:.1f} s'}")

    server = start("postgres", work / "pg-server")
    try:
        loaded = data.load_postgres(tables, server, data.placed(placement, "pg"))
        setup.append(f"- PostgreSQL load (ADBC ingest, keys, indexes, ANALYZE): {loaded:.1f} s")
        setup.append(f"- setup total: {time.perf_counter() - started:.1f} s")
        try:
            silos: dict[str, SiloResource] | None = make_silos(lake_root, server, sqlite_path)
        except Exception as err:  # the engines that need no silo objects still run
            silos, silo_error = None, f"silos could not be built: {_error_text(err)}"
        run_colocated(rows, colocated_path, args.repeats)
        if not args.skip_peer:
            run_peer(
                rows,
                server,
                lake_root,
                sqlite_path,
                placement,
                work / "peer",
                args.repeats,
                args.timeout,
            )
        if silos is None:
            for row in rows:
                row.runs["federated"] = Outcome(error=silo_error)
                if not args.skip_copy:
                    row.runs["copy"] = Outcome(error=silo_error)
            fed_note, table_bytes = silo_error, {}
        else:
            fed_note = run_federated(
                rows, list(silos.values()), placement, args.repeats, args.timeout
            )
            if not args.skip_copy:
                run_copy(rows, silos, placement, args.copy_repeats)
            table_bytes = naive_bytes(rows, silos, placement)
    finally:
        server.stop()

    check(rows)
    title = (
        f"TPC-H SF{label} across silos ({_placement_text(placement)}); best of {args.repeats} "
        f"after a warm-up; co-located = DuckDB {duckdb.__version__}, peer = DuckDB 1.5.5 ATTACH"
    )
    report, raw = render(rows, title=title, setup=setup, table_bytes=table_bytes, fed_note=fed_note)
    print(report)
    data.OUT.mkdir(parents=True, exist_ok=True)
    (data.OUT / f"tpch_sf{label}.md").write_text(report)
    (data.OUT / f"tpch_sf{label}.json").write_text(json.dumps(raw, indent=1, default=str))
    (data.OUT / f"tpch_sf{label}_plans.md").write_text(render_plans(rows))


def make_silos(lake_root: Path, server: Any, sqlite_path: Path) -> dict[str, SiloResource]:
    from resources.silos.parquet import ParquetSilo
    from resources.silos.postgres import PostgresSilo
    from resources.silos.sqlite import SQLiteSilo

    return {
        "lake": ParquetSilo(name="lake", root=str(lake_root)),
        "pg": PostgresSilo(name="pg", **data.postgres_settings(server)),
        "ref": SQLiteSilo(name="ref", path=str(sqlite_path)),
    }


def _placement_text(placement: Mapping[str, str]) -> str:
    silos: dict[str, list[str]] = {}
    for table, silo in placement.items():
        silos.setdefault(silo, []).append(table)
    return "; ".join(
        f"{silo} ({data.SILO_KINDS.get(silo, '?')}): {', '.join(tables)}"
        for silo, tables in silos.items()
    )


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
