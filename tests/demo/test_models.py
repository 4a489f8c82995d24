"""Every demo model materialises from the Dagster UI and beats its trivial baseline on held-out rows.

One module-scoped `dagster dev` (webserver and daemon) on the demo's code location over demo data
at scale 0.5. Runs are launched through GraphQL's ``launchRun``, the mutation the UI's Materialize
button sends: one run of the datasets, their quality gates and the models on them (the
multiprocess executor runs its steps side by side; the federated model spawns one process per
regional silo), and one run per partition of the regional models, as the UI launches a
partition; all at once. What the tests assert is what a
user reads on the asset pages: the metadata of the latest materialisation, fetched over GraphQL,
and one asset page rendered by headless Chromium.
"""

from __future__ import annotations

import os
import time

import pyarrow.parquet as pq
import pytest

from fed_assets.demo.generate import generate
from fed_assets.demo.models import REGIONAL_BOOKS
from tests.servers import ROOT
from tests.ui.dagster_dev import ARTIFACTS, chromium, dagster_dev

# Six models trained in step processes that share two cores with other test sessions: about
# three minutes alone, more under load; the suite's 300 s per test would cut it short.
pytestmark = pytest.mark.timeout(1800)
RUN_TIMEOUT_S = 1500
DATASETS = ["credit_features", "aml_training_set"]
MODELS = ["credit_risk_model", "sar_model", "narrative_lm", "federated_credit_model"]
# One Materialize press over the datasets and the models (their quality gates come with them);
# the regional partitions each in a run of their own. (Six runs, one per model, timed out at a
# load average of 30-40: more processes competing for the same two cores.)
RUNS = {"models": [*DATASETS, *MODELS, "applicant_scores"]}
REGIONS = sorted(REGIONAL_BOOKS)
REGIONAL = [f"regional_credit_models[{s}]" for s in REGIONS]
CLASSIFIERS = ["credit_risk_model", "sar_model", "federated_credit_model", *REGIONAL]
# The models fine_tuned_model(compute=...) places on the compute estate (fed_assets/demo/models.py).
PLACED = ["credit_risk_model", "sar_model", "narrative_lm"]
# How far above the trivial baseline's ROC AUC (0.5) a classifier must be: a margin a user would
# call "learnt something", well clear of the noise of a few hundred held-out rows at chance.
MARGIN = 0.05


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo-models")
    home = tmp_path_factory.mktemp("dagster-home")
    generate(data, scale=0.5, seed=11)
    env = {**os.environ, "FED_ASSETS_DATA": str(data), "PYTHONPATH": str(ROOT)}
    # Step processes train side by side on two cores: one BLAS thread each keeps them from
    # fighting over the same cores (tiny models gain nothing from intra-op threads).
    env["OMP_NUM_THREADS"] = "1"
    env.pop("FED_ASSETS_SILOS", None)
    env.pop("FED_ASSETS_CATALOG", None)
    with dagster_dev(["-w", "workspace.yaml"], env=env, home=home) as dev:
        began = time.monotonic()
        runs = {name: dev.launch(assets) for name, assets in RUNS.items()}
        for silo in REGIONS:
            runs[silo] = dev.launch(["regional_credit_models"], tags={"dagster/partition": silo})
        status = dev.wait(list(runs.values()), timeout=RUN_TIMEOUT_S)
        print(f"demo models materialised through the UI in {time.monotonic() - began:.0f} s")
        failed = {name: dev.failure(r) for name, r in runs.items() if status[r] != "SUCCESS"}
        assert not failed, failed
        shown = {a: dev.materialization(a) for a in [*MODELS, "applicant_scores"]}
        for silo, name in zip(REGIONS, REGIONAL, strict=True):
            shown[name] = dev.materialization("regional_credit_models", silo)
        yield {"dev": dev, "data": data, "runs": runs, "shown": shown}


def test_every_model_was_materialised_by_the_run_launched_for_it(ui):
    runs, shown = ui["runs"], ui["shown"]
    for run, assets in RUNS.items():
        for name in set(assets) & set(shown):
            assert shown[name]["run"] == runs[run], name
    for silo, name in zip(REGIONS, REGIONAL, strict=True):
        assert shown[name]["run"] == runs[silo], name


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifiers_beat_their_trivial_baseline(ui, name):
    meta = ui["shown"][name]["metadata"]
    assert meta["model/roc_auc"] > meta["trivial/roc_auc"] + MARGIN, (
        f"{name}: ROC AUC {meta['model/roc_auc']:.3f}, trivial {meta['trivial/roc_auc']:.3f}"
    )
    assert 0 < meta["logistic_regression/roc_auc"] <= 1  # the other baseline, beside it


def test_narrative_lm_beats_the_unigram_baseline(ui):
    meta = ui["shown"]["narrative_lm"]["metadata"]
    assert meta["model/perplexity"] < meta["unigram/perplexity"]


def test_federated_credit_model_moved_only_weights(ui):
    meta = ui["shown"]["federated_credit_model"]["metadata"]
    assert meta["raw rows moved"] == 0
    audit = meta["residency audit"]
    assert audit and all(r["rows"] == 0 for r in audit), audit  # no route carried a row
    for silo in REGIONS:
        weights = {k: v for k, v in meta.items() if k.startswith(f"weight bytes/{silo}: ")}
        assert len(weights) == 2 and all(v > 0 for v in weights.values()), (silo, weights)
    assert meta["weight bytes moved"] == sum(
        v for k, v in meta.items() if k.startswith("weight bytes/")
    )
    assert any(
        r["source silo"] == "fr_loans" and "model weights carry no rows" in r["allowed by"]
        for r in audit
    ), audit  # the export: none silo takes part: only its weights leave


def test_applicant_scores_are_in_the_results_store(ui):
    scores = pq.read_table(ui["data"] / "results" / "applicant_scores.parquet")
    assert scores.column_names == ["customer_id", "p_default", "predicted_default"]
    assert scores.num_rows == ui["shown"]["applicant_scores"]["metadata"]["dagster/row_count"]
    assert scores.num_rows > 100
    p = scores.column("p_default").to_numpy()
    assert ((p >= 0) & (p <= 1)).all() and p.std() > 0  # scores, not one constant


def test_models_are_tagged_and_trace_back_to_silo_tables(ui):
    nodes = ui["dev"].graphql(
        "{ assetNodes { assetKey { path } tags { key value } dependencyKeys { path } } }"
    )["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    for name in [*MODELS, "regional_credit_models"]:
        assert {"key": "fed_assets/role", "value": "model"} in by_key[name]["tags"], name
    deps = {"/".join(d["path"]) for d in by_key["regional_credit_models"]["dependencyKeys"]}
    assert deps == {f"{s}/loan_book" for s in REGIONS}
    deps = {"/".join(d["path"]) for d in by_key["credit_risk_model"]["dependencyKeys"]}
    assert "credit_features" in deps


@pytest.mark.parametrize("name", PLACED)
def test_placed_models_show_their_placement_and_measured_run(ui, name):
    meta = ui["shown"][name]["metadata"]
    assert meta["placement/pool"] and meta["placement/reasons"]
    rows = {r["quantity"]: r for r in meta["placement/estimate vs actual"]}
    assert rows["seconds"]["estimated"] > 0 and rows["seconds"]["measured"] > 0
    assert meta["placement/energy method"] in ("nvml", "rapl", "codecarbon")


def test_every_placement_shown_is_complete(ui):
    # Models placed by the estate later (per-silo, federated) must show the whole placement.
    for name, found in ui["shown"].items():
        meta = found["metadata"]
        if any(k.startswith("placement/") for k in meta):
            assert {"placement/pool", "placement/reasons"} <= set(meta), name


def test_browser_shows_a_models_metrics_on_its_asset_page(ui):
    dev = ui["dev"]
    dom = chromium(f"http://127.0.0.1:{dev.port}/assets/credit_risk_model", "--dump-dom")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "credit_risk_model.html").write_text(dom)
    meta = ui["shown"]["credit_risk_model"]["metadata"]
    for label in ("model/roc_auc", "trivial/roc_auc", "logistic_regression/roc_auc"):
        assert label in dom, f"the asset page does not show {label}"
    assert f"{meta['model/roc_auc']:.2f}"[:3] in dom
