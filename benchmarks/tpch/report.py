"""What the federated TPC-H benchmark measured, per layout and across layouts, as Markdown.

Per layout: one line per query (every engine's best and cold seconds, bytes moved, the worst
fragment q-error) and the issue's goals with their verdicts; across layouts: one line per layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from benchmarks.tpch.compare import compare
from benchmarks.tpch.queries import Query

ENGINES = ("colocated", "federated", "peer", "copy")
# Goals from issue 12, per layout (at SF0.1 and SF1).
GOAL_VS_PEER = 1.3  # geo-mean at least this many times faster than the ATTACH peer
GOAL_WORST_VS_PEER = 1.5  # no query more than this many times slower than the peer
GOAL_VS_COLOCATED = 1.3  # geo-mean at most this many times co-located DuckDB
GOAL_PLANNING_MS = 100.0
# Fragment SQL in the plans file is cut here: semi-join key lists run to hundreds of kilobytes.
PLAN_SQL_CHARS = 2000


@dataclass
class Outcome:
    """One engine's run of one query: best and first (cold) seconds and the result, or the
    error."""

    seconds: float | None = None
    first: float | None = None
    table: pa.Table | None = None
    error: str | None = None
    equal: str | None = None
    """None when not compared; "yes", or why the result differs from the reference."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    query: Query
    runs: dict[str, Outcome] = field(default_factory=dict)


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
                why = f"comparison failed: {type(err).__name__}: {err}"[:300]
            outcome.equal = why or "yes"


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def ratio(rows: list[Row], top: str, bottom: str, attr: str = "seconds") -> float | None:
    """Geo-mean of ``top`` over geo-mean of ``bottom`` on the queries both finished."""
    pairs = [
        (getattr(r.runs[top], attr), getattr(r.runs[bottom], attr))
        for r in rows
        if top in r.runs and bottom in r.runs
    ]
    pairs = [(a, b) for a, b in pairs if a and b]
    if not pairs:
        return None
    return geomean([a for a, _ in pairs]) / geomean([b for _, b in pairs])


def layout_goals(rows: list[Row]) -> dict[str, Any]:
    """The issue's per-layout measures and verdicts for one layout's rows."""
    n = len(rows)
    equal = sum(r.runs.get("federated", Outcome()).equal == "yes" for r in rows)
    worst_name, worst = None, None
    for r in rows:
        fed, peer = r.runs.get("federated"), r.runs.get("peer")
        slower = (
            fed.seconds / peer.seconds if fed and peer and fed.seconds and peer.seconds else None
        )
        if slower is not None and (worst is None or slower > worst):
            worst_name, worst = r.query.name, slower
    peer_best = ratio(rows, "peer", "federated")
    peer_cold = ratio(rows, "peer", "federated", "first")
    colocated = ratio(rows, "federated", "colocated")
    planning = [r.runs["federated"].extra.get("planning_ms") for r in rows if "federated" in r.runs]
    planning = [p for p in planning if p is not None]
    errors = [r.runs["federated"].extra.get("q_error") for r in rows if "federated" in r.runs]
    errors = [e for e in errors if e is not None]
    moved = sum(
        r.runs["federated"].extra.get("bytes_moved") or 0 for r in rows if "federated" in r.runs
    )
    return {
        "queries": n,
        "equal": equal,
        "speedup_vs_peer": peer_best,
        "speedup_vs_peer_cold": peer_cold,
        "worst_query": worst_name,
        "worst_vs_peer": worst,
        "vs_colocated": colocated,
        "vs_colocated_cold": ratio(rows, "federated", "colocated", "first"),
        "copy_vs_fed": ratio(rows, "copy", "federated"),
        "bytes_moved": moved,
        "max_planning_ms": max(planning) if planning else None,
        "geomean_q_error": geomean(errors),
        "max_q_error": max(errors) if errors else None,
        "met": {
            "equal": equal == n,
            "vs_peer": peer_best is not None
            and peer_cold is not None
            and peer_best >= GOAL_VS_PEER
            and peer_cold >= GOAL_VS_PEER,
            "worst_vs_peer": worst is not None and worst <= GOAL_WORST_VS_PEER,
            "vs_colocated": colocated is not None and colocated <= GOAL_VS_COLOCATED,
            "planning": bool(planning) and max(planning) <= GOAL_PLANNING_MS,
        },
    }


def render_layout(rows: list[Row], *, title: str, notes_in: list[str] = ()) -> str:
    """One layout: a line per query, then its goals."""
    notes: list[str] = list(notes_in)

    def cell(row: Row, engine: str, attr: str = "seconds") -> str:
        outcome = row.runs.get(engine)
        if outcome is None:
            return "skipped"
        if outcome.error is not None:
            notes.append(f"{row.query.name} {engine}: {outcome.error}")
            return f"error [{len(notes)}]"
        value = getattr(outcome, attr)
        text = "" if value is None else f"{value:.3f}"
        if attr == "seconds" and outcome.equal not in (None, "yes"):
            notes.append(f"{row.query.name} {engine} result differs: {outcome.equal}")
            text += f" ≠[{len(notes)}]"
        return text

    lines = [
        title,
        "",
        "| query | co-loc s | fed s | fed cold s | peer s | peer cold s | fed/peer | fed/co-loc "
        "| copy s | moved MB | planning ms | q-error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        fed = row.runs.get("federated", Outcome())
        peer, co = row.runs.get("peer", Outcome()), row.runs.get("colocated", Outcome())
        moved, planning = fed.extra.get("bytes_moved"), fed.extra.get("planning_ms")
        lines.append(
            f"| {row.query.name} | {cell(row, 'colocated')} | {cell(row, 'federated')} "
            f"| {cell(row, 'federated', 'first')} | {cell(row, 'peer')} "
            f"| {cell(row, 'peer', 'first')} "
            f"| {_div(fed.seconds, peer.seconds)} | {_div(fed.seconds, co.seconds)} "
            f"| {cell(row, 'copy')} | {'' if moved is None else f'{moved / 1e6:.3f}'} "
            f"| {'' if planning is None else f'{planning:.1f}'} "
            f"| {_fmt(fed.extra.get('q_error'), 1)} |"
        )
    goals = layout_goals(rows)
    lines += ["", *goal_lines(goals)]
    if notes:
        lines += ["", "Notes:", *(f"{i}. {text}" for i, text in enumerate(notes, 1))]
    return "\n".join(lines) + "\n"


def goal_lines(g: dict[str, Any]) -> list[str]:
    met = g["met"]
    return [
        "| goal | value | verdict |",
        "|---|---|---|",
        f"| results equal to co-located | {g['equal']}/{g['queries']} | {_verdict(met['equal'])} |",
        f"| geo-mean ≥ {GOAL_VS_PEER}× faster than the peer, best and cold "
        f"| {_fmt(g['speedup_vs_peer'])}× best, {_fmt(g['speedup_vs_peer_cold'])}× cold "
        f"| {_verdict(met['vs_peer'])} |",
        f"| no query > {GOAL_WORST_VS_PEER}× slower than the peer "
        f"| worst {g['worst_query']} {_fmt(g['worst_vs_peer'])}× | {_verdict(met['worst_vs_peer'])} |",
        f"| geo-mean ≤ {GOAL_VS_COLOCATED}× co-located (same Parquet) "
        f"| {_fmt(g['vs_colocated'])}× best, {_fmt(g['vs_colocated_cold'])}× cold "
        f"| {_verdict(met['vs_colocated'])} |",
        f"| planning ≤ {GOAL_PLANNING_MS:.0f} ms | max {_fmt(g['max_planning_ms'], 1)} ms "
        f"| {_verdict(met['planning'])} |",
        f"| (info) copy-then-query / federated | {_fmt(g['copy_vs_fed'], 1)}× | |",
        f"| (info) bytes moved | {g['bytes_moved'] / 1e6:.1f} MB | |",
        f"| (info) fragment q-error, geo-mean / max | {_fmt(g['geomean_q_error'], 2)} / "
        f"{_fmt(g['max_q_error'], 1)} | |",
    ]


def render_summary(per_layout: dict[str, dict[str, Any]], *, title: str) -> str:
    """Across layouts: one line per layout with its measures and goal verdicts."""
    lines = [
        title,
        "",
        "| layout | equal | vs peer best | vs peer cold | worst vs peer | vs co-loc best "
        "| vs co-loc cold | vs copy | moved MB | max plan ms | q-err geo/max |",
        "|---|---|---|---|---|---|---|---|---:|---:|---|",
    ]
    for name, g in per_layout.items():
        met = g["met"]
        lines.append(
            f"| {name} | {g['equal']}/{g['queries']} {_mark(met['equal'])} "
            f"| {_fmt(g['speedup_vs_peer'])}× {_mark(met['vs_peer'])} "
            f"| {_fmt(g['speedup_vs_peer_cold'])}× "
            f"| {g['worst_query']} {_fmt(g['worst_vs_peer'])}× {_mark(met['worst_vs_peer'])} "
            f"| {_fmt(g['vs_colocated'])}× {_mark(met['vs_colocated'])} "
            f"| {_fmt(g['vs_colocated_cold'])}× | {_fmt(g['copy_vs_fed'], 1)}× "
            f"| {g['bytes_moved'] / 1e6:.1f} | {_fmt(g['max_planning_ms'], 1)} "
            f"| {_fmt(g['geomean_q_error'], 1)}/{_fmt(g['max_q_error'], 0)} |"
        )
    lines += [
        "",
        f"vs peer: peer geo-mean / federated geo-mean (goal ≥ {GOAL_VS_PEER}, best and cold); "
        f"worst: federated / peer on one query (goal ≤ {GOAL_WORST_VS_PEER}); vs co-loc: "
        f"federated / co-located (goal ≤ {GOAL_VS_COLOCATED}); ✓ met, ✗ missed.",
    ]
    return "\n".join(lines) + "\n"


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
        if fed.extra.get("decisions"):
            out += [f"- decided at run time: {d}" for d in fed.extra["decisions"]] + [""]
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


def raw(rows: list[Row]) -> dict[str, Any]:
    """Every number of one layout, for the JSON file."""
    return {
        row.query.name: {
            engine: {
                "seconds": o.seconds,
                "first": o.first,
                "error": o.error,
                "equal": o.equal,
                "rows": None if o.table is None else o.table.num_rows,
                **{k: v for k, v in o.extra.items() if k not in ("fragments", "sql")},
            }
            for engine, o in row.runs.items()
        }
        for row in rows
    }


def _div(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else ""


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _num(value: Any, digits: int = 0) -> str:
    if not isinstance(value, int | float):
        return "?"
    return f"{value:,.{digits}f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"
