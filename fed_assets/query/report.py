"""Plans and results as text (for the CLI) and Markdown (for Dagster metadata)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # model.py's explain() methods import this module: types only here
    from fed_assets.query.model import Plan, QueryResult


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB"


def explain_plan(plan: Plan) -> str:
    """Residual query, fragments with their silo SQL, estimates and residency rule."""
    lines = [
        f"Federated plan ({len(plan.fragments)} fragment(s), planned in {plan.planning_ms:.1f} ms, "
        f"engine region {plan.engine_region or 'unset'})",
        "",
        (
            "Residual query (embedded DuckDB):"
            if plan.shipped_to is None
            else f"Residual query: runs in silo {plan.shipped_to}, its own fragments as CTEs, "
            "the others shipped in as tables:"
        ),
        f"  {plan.residual}",
    ]
    for f in plan.fragments:
        lines += [
            "",
            f"{f.id} → silo {f.silo} (region {f.source_region}); reads {', '.join(f.tables)}",
            f"  estimate: {f.estimate.rows:,.0f} rows, {_mb(f.estimate.bytes)}, "
            f"{f.estimate.seconds:.3f} s, ${f.estimate.usd:.4f}",
            f"  residency: {f.rule}",
            f"  sql: {f.sql}",
        ]
    for sj in plan.semi_joins:
        lines.append(
            f"\nsemi-join: keys {sj.source}.{sj.source_column} filter {sj.target}.{sj.target_column}"
        )
    if plan.decisions:
        lines += ["", "Decided at planning:", *(f"  {d}" for d in plan.decisions)]
    return "\n".join(lines)


def explain_result(result: QueryResult) -> str:
    """The plan, then what each fragment actually did."""
    lines = [explain_plan(result.plan), "", "Actuals:"]
    for f in result.fragments:
        sj = f", filtered by {f.semi_join_keys:,} semi-join keys" if f.semi_join_keys else ""
        lines.append(
            f"  {f.id} {f.silo}: {f.rows:,} rows (est {f.est_rows:,.0f}, q-error "
            f"{f.q_error:.1f}), {_mb(f.bytes)} "
            f"{f.source_region} → {f.destination_region}, {f.seconds:.3f} s{sj}"
        )
    if result.decisions:
        lines += ["", "Decided at run time:", *(f"  {d}" for d in result.decisions)]
    lines.append(
        f"  result: {result.table.num_rows:,} rows; moved {_mb(result.bytes_moved)}; "
        + ", ".join(f"{k} {v:.3f} s" for k, v in result.stage_seconds.items())
    )
    return "\n".join(lines)


def fragment_rows(result: QueryResult) -> list[dict]:
    """One row per fragment run: silo, route, rows and MB against the estimates, seconds, rule."""
    return [
        {
            "fragment": f.id,
            "silo": f.silo,
            "route": f"{f.source_region} → {f.destination_region}",
            "rows": f.rows,
            "est. rows": round(f.est_rows),
            "q-error": round(f.q_error, 1),
            "MB": round(f.bytes / 1e6, 3),
            "est. MB": round(f.est_bytes / 1e6, 3),
            "seconds": round(f.seconds, 3),
            "residency rule": f.rule,
        }
        for f in result.fragments
    ]


def plan_markdown(plan: Plan, dialects: Mapping[str, str]) -> str:
    """The plan as Markdown: the residual query and each fragment's SQL laid out one clause a
    line (in the dialect its silo speaks), with estimates, residency rule and semi-joins.

    Args:
        dialects: silo name → SQL dialect (DuckDB where absent).
    """
    from fed_assets.metadata import pretty_sql

    where = "embedded DuckDB" if plan.shipped_to is None else f"silo {plan.shipped_to}"
    residual_dialect = "duckdb" if plan.shipped_to is None else dialects.get(plan.shipped_to)
    parts = [
        f"**Federated plan**: {len(plan.fragments)} fragment(s), planned in "
        f"{plan.planning_ms:.1f} ms, engine region {plan.engine_region or 'unset'}",
        f"**Residual query** ({where})",
        f"```sql\n{pretty_sql(plan.residual, residual_dialect or 'duckdb')}\n```",
    ]
    for f in plan.fragments:
        parts += [
            f"**{f.id} → silo {f.silo}** (region {f.source_region}; reads {', '.join(f.tables)}; "
            f"estimate {f.estimate.rows:,.0f} rows, {_mb(f.estimate.bytes)}, "
            f"{f.estimate.seconds:.3f} s, ${f.estimate.usd:.4f}; residency: {f.rule})",
            f"```sql\n{pretty_sql(f.sql, dialects.get(f.silo, 'duckdb'))}\n```",
        ]
    parts += [
        f"semi-join: keys {sj.source}.{sj.source_column} filter {sj.target}.{sj.target_column}"
        for sj in plan.semi_joins
    ]
    return "\n\n".join(parts)
