"""The demo's regional models materialise from the Dagster UI and beat their trivial baseline.

One run of the federated credit model (FedAvg over the three regional loan books, one site
process per silo) and one run per partition of the per-silo regional model, as the UI launches a
partition; all at once. The datasets and the central models run in ``test_models_central.py``,
on the other pytest worker.
"""

from __future__ import annotations

import pytest

from tests.demo import models_ui

pytestmark = pytest.mark.timeout(models_ui.TIMEOUT_S)
CLASSIFIERS = ["federated_credit_model", *models_ui.REGIONAL]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    runs = {"federated": ["federated_credit_model"]}
    with models_ui.demo_ui(tmp_path_factory, runs, partitioned="regional_credit_models") as found:
        yield found


def test_every_model_was_materialised_by_the_run_launched_for_it(ui):
    assert set(ui["shown"]) == set(CLASSIFIERS)
    models_ui.assert_each_materialised_by_its_run(ui)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifiers_beat_their_trivial_baseline(ui, name):
    models_ui.assert_beats_trivial(ui, name)


def test_federated_credit_model_moved_only_weights(ui):
    meta = ui["shown"]["federated_credit_model"]["metadata"]
    assert meta["raw rows moved"] == 0
    audit = meta["residency audit"]
    assert audit and all(r["rows"] == 0 for r in audit), audit  # no route carried a row
    for silo in models_ui.REGIONS:
        weights = {k: v for k, v in meta.items() if k.startswith(f"weight bytes/{silo}: ")}
        assert len(weights) == 2 and all(v > 0 for v in weights.values()), (silo, weights)
    assert meta["weight bytes moved"] == sum(
        v for k, v in meta.items() if k.startswith("weight bytes/")
    )
    assert any(
        r["source silo"] == "fr_loans" and "model weights carry no rows" in r["allowed by"]
        for r in audit
    ), audit  # the export: none silo takes part: only its weights leave


def test_models_are_tagged_and_trace_back_to_silo_tables(ui):
    nodes = models_ui.asset_nodes(ui)
    for name in ["federated_credit_model", "regional_credit_models"]:
        models_ui.assert_tagged_model(nodes, name)
        assert models_ui.dependencies(nodes, name) == {
            f"{s}/loan_book" for s in models_ui.REGIONS
        }, name


def test_every_placement_shown_is_complete(ui):
    models_ui.assert_placements_complete(ui)
