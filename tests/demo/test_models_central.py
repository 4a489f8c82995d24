"""The demo's central models materialise from the Dagster UI and beat their baselines.

One press of Materialize (one ``launchRun``) over the datasets, their quality gates, the credit
risk, SAR and narrative models and ``applicant_scores`` (which scores every applicant with the
credit risk model); the multiprocess executor runs the steps side by side. The regional and
federated models run in ``test_models_regional.py``, on the other pytest worker.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from tests.demo import models_ui
from tests.ui.dagster_dev import ARTIFACTS, chromium

pytestmark = pytest.mark.timeout(models_ui.TIMEOUT_S)
MODELS = ["credit_risk_model", "sar_model", "narrative_lm"]
CLASSIFIERS = ["credit_risk_model", "sar_model"]
# The models fine_tuned_model(compute=...) places on the compute estate (fed_assets/demo/models.py).
PLACED = MODELS


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    with models_ui.demo_ui(
        tmp_path_factory, {"models": [*models_ui.DATASETS, *MODELS, "applicant_scores"]}
    ) as found:
        yield found


def test_every_model_was_materialised_by_the_run_launched_for_it(ui):
    assert set(ui["shown"]) == {*MODELS, "applicant_scores"}
    models_ui.assert_each_materialised_by_its_run(ui)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifiers_beat_their_trivial_baseline(ui, name):
    models_ui.assert_beats_trivial(ui, name)


def test_narrative_lm_beats_the_unigram_baseline(ui):
    meta = ui["shown"]["narrative_lm"]["metadata"]
    assert meta["model/perplexity"] < meta["unigram/perplexity"]


def test_applicant_scores_are_in_the_results_store(ui):
    scores = pq.read_table(ui["data"] / "results" / "applicant_scores.parquet")
    assert scores.column_names == ["customer_id", "p_default", "predicted_default"]
    assert scores.num_rows == ui["shown"]["applicant_scores"]["metadata"]["dagster/row_count"]
    assert scores.num_rows > 100
    p = scores.column("p_default").to_numpy()
    assert ((p >= 0) & (p <= 1)).all() and p.std() > 0  # scores, not one constant


def test_models_are_tagged_and_trace_back_to_their_datasets(ui):
    nodes = models_ui.asset_nodes(ui)
    for name in MODELS:
        models_ui.assert_tagged_model(nodes, name)
    assert "credit_features" in models_ui.dependencies(nodes, "credit_risk_model")
    assert "aml_training_set" in models_ui.dependencies(nodes, "sar_model")
    assert models_ui.dependencies(nodes, "applicant_scores") == {
        "credit_risk_model",
        "credit_features",
    }


@pytest.mark.parametrize("name", PLACED)
def test_placed_models_show_their_placement_and_measured_run(ui, name):
    meta = ui["shown"][name]["metadata"]
    assert meta["placement/pool"] and meta["placement/reasons"]
    rows = {r["quantity"]: r for r in meta["placement/estimate vs actual"]}
    assert rows["seconds"]["estimated"] > 0 and rows["seconds"]["measured"] > 0
    assert meta["placement/energy method"] in ("nvml", "rapl", "codecarbon")


def test_every_placement_shown_is_complete(ui):
    models_ui.assert_placements_complete(ui)


def test_browser_shows_a_models_metrics_on_its_asset_page(ui):
    dev = ui["dev"]
    dom = chromium(f"http://127.0.0.1:{dev.port}/assets/credit_risk_model", "--dump-dom")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "credit_risk_model.html").write_text(dom)
    meta = ui["shown"]["credit_risk_model"]["metadata"]
    for label in ("model/roc_auc", "trivial/roc_auc", "logistic_regression/roc_auc"):
        assert label in dom, f"the asset page does not show {label}"
    assert f"{meta['model/roc_auc']:.2f}"[:3] in dom
