"""Quality gates: a ``DatasetSuite`` as a blocking Dagster asset check on a dataset.

A failing gate has severity ERROR and is blocking, so in a run that also trains a model on the
dataset the training step does not run: a model is never trained on data that failed its suite.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pyarrow as pa

from fed_assets.quality.suite import DatasetSuite, Validation, validate

# The check's name on every dataset it guards (shown in the UI beside the asset).
QUALITY_CHECK = "quality_gate"


def quality_check(
    asset: dg.AssetsDefinition | dg.AssetKey | str,
    suite: DatasetSuite,
    *,
    name: str = QUALITY_CHECK,
) -> dg.AssetChecksDefinition:
    """A blocking asset check that validates ``asset``'s value against ``suite``.

    The check's metadata holds each expectation's result and the failing counts.
    """
    key = _key(asset)

    @dg.asset_check(
        asset=key,
        name=name,
        blocking=True,
        description=suite.describe(),
        metadata={"suite": suite.name},
    )
    def _check(data) -> dg.AssetCheckResult:
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data)
        validation = validate(suite, table)
        return dg.AssetCheckResult(
            passed=validation.success,
            severity=dg.AssetCheckSeverity.ERROR,
            description=validation.summary(),
            metadata=validation_metadata(validation),
        )

    return _check


def validation_metadata(validation: Validation) -> dict[str, Any]:
    """Check metadata: counts, and one row per expectation."""
    rows = [
        "| expectation | column | passed | unexpected | observed |",
        "|---|---|---|---:|---|",
        *(
            f"| {o.expectation} | {o.column or ''} | {'yes' if o.success else '**no**'} | "
            f"{'' if o.unexpected_count is None else o.unexpected_count} | "
            f"{'' if o.observed is None else o.observed} |"
            for o in validation.outcomes
        ),
    ]
    return {
        "rows": validation.rows,
        "expectations": len(validation.outcomes),
        "failed expectations": len(validation.failed),
        "failing values": validation.failing_rows,
        "results": dg.MetadataValue.md("\n".join(rows)),
        "failed": dg.MetadataValue.json(
            [
                {
                    "expectation": o.expectation,
                    "column": o.column,
                    "unexpected_count": o.unexpected_count,
                    "observed": o.observed,
                }
                for o in validation.failed
            ]
        ),
    }


def _key(asset: dg.AssetsDefinition | dg.AssetKey | str) -> dg.AssetKey:
    if isinstance(asset, dg.AssetsDefinition):
        return asset.key
    return dg.AssetKey.from_coercible(asset)
