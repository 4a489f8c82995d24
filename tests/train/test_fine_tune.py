"""fine_tune end to end on small tables: classification, language models, determinism, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from fed_assets.train.fine_tune import fine_tune
from fed_assets.train.model import FineTunedModel
from tests.train.conftest import TINY, loans, notes


def test_binary_classifier_beats_trivial_and_reports_baselines():
    model = fine_tune(loans(), task="sequence_classification", label="label", config=TINY)
    m = model.metrics
    assert set(m) == {"model", "trivial", "logistic_regression"}
    assert m["model"]["roc_auc"] > m["trivial"]["roc_auc"] + 0.15
    assert set(m["model"]) == {"accuracy", "roc_auc", "f1"}
    t = model.training
    assert t["rows trained"] + t["rows held out"] == 300
    assert 0 < t["parameters trainable"] < t["parameters total"]  # LoRA: adapters and head only
    assert t["tokens trained"] > 0 and t["tokens/s"] > 0
    proba = model.predict_proba(loans(20, seed=5))
    assert proba.shape == (20, 2) and np.allclose(proba.sum(axis=1), 1)
    assert set(model.predict(loans(20, seed=5))) <= {False, True}


def test_multiclass_with_custom_template_and_full_method():
    data = loans(300, classes=3)
    model = fine_tune(
        data,
        task="sequence_classification",
        label="label",
        template="Grade {grade} loan, income {income}.",
        method="full",
        config=TINY,
    )
    assert model.classes == ("high", "low", "mid")
    assert model.renderer.render(data.slice(0, 1))[0].startswith(f"Grade {data['grade'][0]} loan")
    assert model.predict_proba(data.slice(0, 7)).shape == (7, 3)
    assert model.metrics["model"]["accuracy"] > model.metrics["trivial"]["accuracy"]
    assert model.parameters()["trainable"] == model.parameters()["total"]


def test_same_data_and_config_give_same_metrics():
    a = fine_tune(loans(), task="sequence_classification", label="label", config=TINY)
    b = fine_tune(loans(), task="sequence_classification", label="label", config=TINY)
    assert a.metrics == b.metrics
    assert a.history == b.history


def test_causal_lm_beats_unigram_and_generates():
    model = fine_tune(notes(), task="causal_lm", text="narrative", config=TINY.replace(epochs=4))
    m = model.metrics
    assert m["model"]["perplexity"] < m["unigram"]["perplexity"]
    assert model.perplexity(notes(20, seed=3)) < m["unigram"]["perplexity"]
    out = model.generate("case 3:", max_new_tokens=8)
    assert out.startswith("case 3:") and len(out) > len("case 3:")


@pytest.mark.parametrize("method", ["lora", "full"])
def test_save_and_load_give_the_same_predictions(tmp_path, method):
    data = loans()
    model = fine_tune(
        data, task="sequence_classification", label="label", method=method, config=TINY
    )
    path = model.save(tmp_path / "m")
    assert (path / ("adapter" if method == "lora" else "model")).is_dir()
    assert list(path.rglob("*.safetensors"))
    assert {"metrics.json", "README.md", "curve.png", "fed_model.json"} <= {
        p.name for p in path.iterdir()
    }
    loaded = FineTunedModel.load(path)
    assert np.allclose(
        loaded.predict_proba(data.slice(0, 30)), model.predict_proba(data.slice(0, 30)), atol=1e-6
    )
    assert loaded.metrics == model.metrics
    assert (path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_numbers_as_digits_or_bins():
    data = loans()
    bins = fine_tune(data, task="sequence_classification", label="label", config=TINY)
    digits = fine_tune(
        data, task="sequence_classification", label="label", config=TINY.replace(numbers="digits")
    )
    assert (
        "income is " + str(int(data["income"][0].as_py()))
        in digits.renderer.render(data.slice(0, 1))[0]
    )
    assert any(
        w in bins.renderer.render(data.slice(0, 1))[0]
        for w in ("very low", "low", "medium", "high")
    )
