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
) -> dict[str, Any]:
    """Metadata for a materialisation: where it ran and why, estimate against actual, and (with
    ``history``) a PNG of the estimate's error over the pool's past runs."""
    estimate = placement.estimate
    f = estimate.footprint
    measured = actual.footprint if actual is not None else None
    rows = [
        ("seconds", f.seconds, measured.seconds if measured else None),
        ("tokens/s", estimate.tokens_per_s, actual.tokens_per_s if actual else None),
        ("usd", f.usd, measured.usd if measured else None),
        ("kWh (facility)", f.kwh, measured.kwh if measured else None),
        ("kg CO₂e", f.co2_kg, measured.co2_kg if measured else None),
        ("litres water", f.water_l, measured.water_l if measured else None),
    ]
    records = [
        dg.TableRecord(
            {
                "quantity": name,
                "estimated": _round(est),
                "measured": _round(got) if got is not None else None,
                "error %": _round(100 * (est - got) / got) if got else None,
            }
        )
        for name, est, got in rows
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
            records=records,
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("quantity", "string"),
                    dg.TableColumn("estimated", "float"),
                    dg.TableColumn("measured", "float"),
                    dg.TableColumn("error %", "float"),
                ]
            ),
        ),
        "placement/flops": dg.MetadataValue.float(estimate.flops),
        "placement/memory GB": dg.MetadataValue.float(round(estimate.memory.gb, 4)),
        "placement/utilisation": dg.MetadataValue.float(round(estimate.utilisation, 4)),
    }
    if actual is not None:
        metadata["placement/energy method"] = actual.energy_method
    pool_runs = [r for r in history if r.pool == pool.name][-PLOT_RUNS:]
    if pool_runs:
        metadata["placement/estimate error over runs"] = dg.MetadataValue.md(
            f"![estimate error over runs](data:image/png;base64,{error_plot_png(pool_runs)})"
        )
    return metadata


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
