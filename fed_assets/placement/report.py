"""A placement, its estimate and the measured actuals as Dagster metadata, with a plot of the
estimate's error over past runs."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import dagster as dg

from fed_assets.placement.choice import Placement
from fed_assets.placement.history import RunRecord
from fed_assets.placement.measuring import Actual

# Runs the error plot shows: the recent history, enough to see calibration converge.
PLOT_RUNS = 50


def placement_metadata(
    placement: Placement,
    actual: Actual | None = None,
    *,
    history: Sequence[RunRecord] = (),
    before: Placement | None = None,
) -> dict[str, Any]:
    """Metadata for a materialisation: where it ran and why, estimate against actual, and (with
    ``history``) a PNG of the estimate's error over the pool's past runs of the same kind.

    Args:
        before: the placement as chosen before the inputs were read (from the catalog's row
            counts); its estimate is shown beside the refined one, which the error is of.
    """
    estimate = placement.estimate
    measured = actual.footprint if actual is not None else None
    quantities = _quantities(estimate.footprint, estimate.tokens_per_s)
    earlier = _quantities(before.estimate.footprint, before.estimate.tokens_per_s) if before else {}
    got = _quantities(actual.footprint, actual.tokens_per_s) if actual is not None else {}
    records = []
    for name, est in quantities.items():
        value = got.get(name)
        row = {"quantity": name}
        if before is not None:
            row["estimated before read"] = _round(earlier[name])
        row |= {
            "estimated": _round(est),
            "measured": _round(value) if value is not None else None,
            "error %": _round(100 * (est - value) / value) if value else None,
        }
        records.append(dg.TableRecord(row))
    columns = [dg.TableColumn("quantity", "string")]
    if before is not None:
        columns.append(dg.TableColumn("estimated before read", "float"))
    columns += [
        dg.TableColumn("estimated", "float"),
        dg.TableColumn("measured", "float"),
        dg.TableColumn("error %", "float"),
    ]
    pool = placement.pool
    metadata: dict[str, Any] = {
        "placement/pool": pool.name,
        "placement/region": pool.region,
        "placement/device": f"{pool.count} × {pool.gpu_type or 'CPU'}"
        + (f" ({pool.location})" if pool.location else ""),
        "placement/objective": placement.objective,
        "placement/reasons": dg.MetadataValue.md(
            "\n".join(f"- {r}" for r in placement.reasons)
            + "".join(f"\n- rejected {name}: {why}" for name, why in placement.rejected.items())
        ),
        "placement/tags": dg.MetadataValue.json(placement.tags),
        "placement/estimate vs actual": dg.MetadataValue.table(
            records=records, schema=dg.TableSchema(columns=columns)
        ),
        "placement/flops": dg.MetadataValue.float(estimate.flops),
        "placement/memory GB": dg.MetadataValue.float(round(estimate.memory.gb, 4)),
        "placement/utilisation": dg.MetadataValue.float(round(estimate.utilisation, 4)),
    }
    if actual is not None:
        metadata["placement/energy method"] = actual.energy_method
    if measured is not None:
        metadata["placement/measured seconds"] = dg.MetadataValue.float(round(measured.seconds, 3))
    metadata["placement/estimated seconds"] = dg.MetadataValue.float(round(estimate.seconds, 3))
    if before is not None:
        metadata["placement/estimated seconds before read"] = dg.MetadataValue.float(
            round(before.estimate.seconds, 3)
        )
    kind_runs = [r for r in history if r.pool == pool.name and r.kind == estimate.kind]
    pool_runs = kind_runs[-PLOT_RUNS:]
    if pool_runs:
        metadata["placement/estimate error over runs"] = dg.MetadataValue.md(
            f"![estimate error over runs](data:image/png;base64,{error_plot_png(pool_runs)})"
        )
    return metadata


def _quantities(f, tokens_per_s: float) -> dict[str, float]:
    """The rows of the estimate-against-actual table, from a footprint and a token rate."""
    return {
        "seconds": f.seconds,
        "tokens/s": tokens_per_s,
        "usd": f.usd,
        "kWh (facility)": f.kwh,
        "kg CO₂e": f.co2_kg,
        "litres water": f.water_l,
    }


def error_plot_png(records: Sequence[RunRecord]) -> str:
    """A PNG (base64) of (estimated − measured) ÷ measured time for each run, in order, with
    the ±25 % band."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3), dpi=80)
    errors = [100 * r.error for r in records]
    axes.plot(range(1, len(errors) + 1), errors, marker="o")
    axes.axhspan(-25, 25, alpha=0.15, color="green")
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_xlabel("run")
    axes.set_ylabel("time estimate error %")
    axes.set_title(f"pool {records[-1].pool}: estimated vs measured time")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _round(value: float) -> float:
    return float(f"{value:.4g}")
