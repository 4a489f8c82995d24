"""Federated fine-tuning through Flower's own deployment runtime: a SuperLink and one SuperNode
per silo, as processes on 127.0.0.1, each SuperNode reading only its own silo (~60 s)."""

from __future__ import annotations

import numpy as np
import pytest

from fed_assets.train.flower import train_with_flower
from fed_assets.train.site import FederationSpec, starting_model
from tests.train.conftest import TINY


# Flower's runtime takes 15–20 s a round plus start-up; on a busy machine more than the suite's
# 300 s bound per test.
@pytest.mark.timeout(600)
def test_flower_runtime_trains_across_sites_moving_only_weights(banks):
    spec = FederationSpec(
        features=("grade", "income"), label="label", classes=(False, True), config=TINY
    )
    sites = {
        name: (banks.silos[name], "loans") for name in ("de_bank", "fr_bank")
    }  # fr: export none
    result = train_with_flower(spec, sites, rounds=2, aggregator_region="eu")
    start = starting_model(spec).trainable_arrays()
    final = result.model.trainable_arrays()
    assert any(not np.allclose(start[k], final[k]) for k in start)  # the sites trained it
    assert result.rows_moved == 0
    weights = [
        r for r in result.routes if r["kind"] == "weights" and r["destination_region"] == "eu"
    ]
    assert {r["silo"] for r in weights} == set(sites) and all(r["bytes"] > 0 for r in weights)
    m = result.model.metrics
    assert m["model"]["roc_auc"] > m["trivial"]["roc_auc"]
