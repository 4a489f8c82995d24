"""Federated fine-tuning: FedAvg on numbers, embedded rounds across three silos, residency."""

from __future__ import annotations

import numpy as np
import pytest

from fed_assets.train.fedavg import fedavg, nbytes
from fed_assets.train.federated import train_federated
from fed_assets.train.site import FederationSpec
from tests.train.conftest import TINY

SPEC = FederationSpec(
    features=("grade", "income"),
    label="label",
    classes=(False, True),
    config=TINY,
    local_epochs=1.0,
)


def test_fedavg_weights_by_examples():
    a = {"w": np.array([0.0, 2.0]), "b": np.array([1.0])}
    b = {"w": np.array([4.0, 6.0]), "b": np.array([3.0])}
    out = fedavg([(a, 1), (b, 3)])
    assert np.allclose(out["w"], [3.0, 5.0]) and np.allclose(out["b"], [2.5])
    assert np.allclose(fedavg([(a, 5)])["w"], a["w"])
    assert np.allclose(fedavg([(a, 0), (b, 2)])["w"], b["w"])  # a site with no examples counts 0
    assert nbytes(a) == 3 * 8
    with pytest.raises(ValueError, match="different parameters"):
        fedavg([(a, 1), ({"w": a["w"]}, 1)])
    with pytest.raises(ValueError, match="shapes"):
        fedavg([(a, 1), ({"w": np.zeros(3), "b": a["b"]}, 1)])
    with pytest.raises(ValueError, match="at least one"):
        fedavg([])


def test_embedded_federation_moves_only_weights(banks):
    sites = {name: (banks.silos[name], "loans") for name in ("de_bank", "fr_bank", "es_bank")}
    result = train_federated(SPEC, sites, rounds=2, aggregator_region="eu")
    assert result.rows_moved == 0
    reads = [r for r in result.routes if r["kind"] == "rows"]
    assert {r["silo"] for r in reads} == set(sites) and all(r["rows"] == 0 for r in reads)
    assert all(r["source_region"] == r["destination_region"] for r in reads)  # read in place
    out = [r for r in result.routes if r["kind"] == "weights" and r["destination_region"] == "eu"]
    assert {r["silo"] for r in out} == set(sites) and all(r["bytes"] > 0 for r in out)
    expected = 2 * nbytes(result.model.trainable_arrays())
    assert all(r["bytes"] == expected for r in out)  # two rounds of adapters, nothing else
    fr = next(r for r in out if r["silo"] == "fr_bank")
    assert fr["rule"] == "model weights carry no rows"  # export: none takes part
    metrics = result.model.metrics
    assert metrics["model"]["roc_auc"] > metrics["trivial"]["roc_auc"]
    assert set(result.site_metrics) == set(sites)
    assert result.model.training["raw rows moved"] == 0
