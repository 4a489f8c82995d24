"""The drift gate: retrain only when a model's training data moved since it was trained.

Each model records the profile of the data it was trained on in its materialisation metadata
(``fed_assets.profile.PROFILE_METADATA_KEY``). This blocking check on a dataset profiles the
dataset now, reads the profile that each downstream model's latest materialisation recorded
(from the Dagster instance), and compares them with ``fed_assets.profile.drift``. It passes —
retrain — when any model's data moved by at least the threshold (or a model was never trained),
and fails — skip — when none did: the training step of that run does not start, and the check
says which it decided and why. Only the models in the check's own run are compared: a run that
refreshes the dataset alone (the daily schedule) has no retrain to gate, and the check passes.
"""

from __future__ import annotations

import math
from typing import Any

import dagster as dg
import pyarrow as pa

from fed_assets.asset_graph import MODELS, downstream
from fed_assets.profile import PROFILE_METADATA_KEY, drift, profile

# The check's name on every dataset it guards.
DRIFT_CHECK = "retrain_needed"
# A column whose mean moved by a tenth of a standard deviation, or whose category shares moved
# by 10 % of the mass, is a change a model can notice; less is noise between refreshes.
DRIFT_THRESHOLD = 0.1


def drift_check(
    asset: dg.AssetsDefinition | dg.AssetKey | str,
    *,
    threshold: float = DRIFT_THRESHOLD,
    models: dg.AssetSelection = MODELS,
    name: str = DRIFT_CHECK,
) -> dg.AssetChecksDefinition:
    """A blocking check on ``asset`` that lets its models retrain only if the data moved.

    Args:
        threshold: the drift score (``fed_assets.profile.drift``, worst column) from which the
            data counts as moved.
        models: which downstream assets are models (by default, by their tag).
    """
    key = asset.key if isinstance(asset, dg.AssetsDefinition) else dg.AssetKey.from_coercible(asset)

    @dg.asset_check(
        asset=key,
        name=name,
        blocking=True,
        description=f"Passes (retrain) when the data moved by a drift score of at least "
        f"{threshold} since a downstream model was trained on it; fails (skip retraining) when "
        "it did not.",
    )
    def _check(context, data):  # no annotations: postponed ones are strings Dagster refuses
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data)
        graph = context.op_execution_context.job_def.asset_layer.asset_graph
        found = models.resolve(graph, allow_missing=True) & downstream(graph, [key])
        in_run = context.op_execution_context.run.asset_selection
        if in_run is not None:  # a refresh of the dataset alone has no retrain to gate
            found &= set(in_run)
        decision = decide(
            profile(table),
            {m.to_user_string(): trained_profile(context.instance, m) for m in sorted(found)},
            threshold,
        )
        return dg.AssetCheckResult(
            passed=decision["retrain"],
            severity=dg.AssetCheckSeverity.ERROR,
            description=decision["reason"],
            metadata={
                "decision": "retrain" if decision["retrain"] else "skip retraining",
                "threshold": threshold,
                "by model": dg.MetadataValue.json(decision["by model"]),
            },
        )

    return _check


def trained_profile(instance: dg.DagsterInstance, model: dg.AssetKey) -> dict[str, Any] | None:
    """The training-data profile the model's latest materialisation recorded (None: none)."""
    event = instance.get_latest_materialization_event(model)
    if event is None or event.asset_materialization is None:
        return None
    entry = event.asset_materialization.metadata.get(PROFILE_METADATA_KEY)
    if entry is None:
        return None
    return entry.value if hasattr(entry, "value") else entry


def decide(
    current: dict[str, Any], trained: dict[str, dict[str, Any] | None], threshold: float
) -> dict[str, Any]:
    """Whether to retrain: per model, the worst column's drift against its training profile.

    A model never trained, or whose materialisation recorded no profile, is retrained.
    """
    by_model: dict[str, dict[str, Any]] = {}
    for model, reference in trained.items():
        if reference is None:
            by_model[model] = {"retrain": True, "why": "no training-data profile recorded yet"}
            continue
        scores = drift(reference, current)
        column, worst = max(scores.items(), key=lambda kv: kv[1], default=("", 0.0))
        rows_moved = reference["rows"] != current["rows"]
        by_model[model] = {
            "retrain": worst >= threshold,
            "worst column": column,
            "drift": "inf" if math.isinf(worst) else round(worst, 4),
            "rows then": reference["rows"],
            "rows now": current["rows"],
            "why": f"column '{column}' drifted by {worst:.3g} "
            f"({'≥' if worst >= threshold else '<'} {threshold})"
            + ("; row count changed" if rows_moved else ""),
        }
    if not by_model:
        return {
            "retrain": True,
            "reason": "no model downstream of the dataset in this run: no retrain to gate",
            "by model": {},
        }
    retrain = any(m["retrain"] for m in by_model.values())
    shown = "; ".join(f"{m}: {v['why']}" for m, v in by_model.items())
    reason = (
        f"data moved since training, retrain ({shown})"
        if retrain
        else f"data did not move since training, retraining skipped ({shown})"
    )
    return {"retrain": retrain, "reason": reason, "by model": by_model}
