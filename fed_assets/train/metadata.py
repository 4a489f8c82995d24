"""Dagster metadata of a model materialisation: metrics beside baselines, cost, curve, profile."""

from __future__ import annotations

import base64
from typing import Any

import dagster as dg
import pyarrow as pa

from fed_assets.profile import PROFILE_METADATA_KEY, profile


def model_metadata(model: Any, training_table: pa.Table) -> dict[str, Any]:
    """Metrics and baselines (a table), training figures, the curve PNG and the data profile."""
    rows = [(who, values) for who, values in model.metrics.items() if isinstance(values, dict)]
    names = sorted({m for _, values in rows for m in values})
    metadata: dict[str, Any] = {
        "metrics": dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {"model": who, **{n: round(float(v.get(n, float("nan"))), 4) for n in names}}
                )
                for who, v in rows
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("model", "string"),
                    *(dg.TableColumn(n, "float") for n in names),
                ]
            ),
        ),
        "training curve": dg.MetadataValue.md(
            "![training curve](data:image/png;base64,"
            + base64.b64encode(model.curve_png()).decode()
            + ")"
        ),
        PROFILE_METADATA_KEY: dg.MetadataValue.json(profile(training_table)),
        "task": model.task,
        "method": model.method,
    }
    for who, values in rows:
        for n, v in values.items():
            metadata[f"{who}/{n}"] = float(v)
    for key, value in model.training.items():
        metadata[key] = value
    return metadata


def route_dict(route) -> dict[str, Any]:
    """A residency ``Route`` as the plain dict training metadata and audits carry."""
    return {
        "kind": route.kind,
        "silo": route.silo,
        "source_region": route.source_region,
        "destination_region": route.destination_region,
        "rule": route.rule,
        "rows": route.rows or 0,
        "bytes": route.bytes or 0,
    }


def movement_table(routes: list[dict[str, Any]]) -> dg.MetadataValue:
    """The residency audit of a training run: what moved, from where to where, allowed by what."""
    from fed_assets import metadata as md

    return md.table(
        [
            {
                "kind": r["kind"],
                "source silo": r["silo"],
                "source region": r["source_region"],
                "destination region": r["destination_region"],
                "rows": r.get("rows") or 0,
                "bytes": r.get("bytes") or 0,
                "allowed by": r["rule"],
            }
            for r in routes
        ],
        columns=[
            "kind",
            "source silo",
            "source region",
            "destination region",
            "rows",
            "bytes",
            "allowed by",
        ],
    )
