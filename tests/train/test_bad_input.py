"""Bad input to fine_tune: each case a FedAssetsError that names the column, field or step."""

from __future__ import annotations

import errno
import os

import numpy as np
import pyarrow as pa
import pytest

from fed_assets.errors import FedAssetsError
from fed_assets.train import (
    BaseModelError,
    ConfigFieldError,
    DivergedError,
    LabelError,
    MissingColumnError,
    ModelSaveError,
    NoRowsError,
    TrainingConfig,
)
from fed_assets.train.fine_tune import fine_tune
from fed_assets.train.model import FineTunedModel
from tests.train.conftest import TINY, loans, notes

CLS = "sequence_classification"


def test_no_rows():
    with pytest.raises(NoRowsError, match="no rows"):
        fine_tune(loans().slice(0, 0), task=CLS, label="label", config=TINY)


def test_missing_label_names_the_columns_there_are():
    with pytest.raises(MissingColumnError) as err:
        fine_tune(loans(), task=CLS, label="defaulted", config=TINY)
    assert "defaulted" in str(err.value) and "grade, income, region, label" in str(err.value)
    with pytest.raises(MissingColumnError, match="text column 'story'"):
        fine_tune(notes(), task="causal_lm", text="story", config=TINY)
    with pytest.raises(ConfigFieldError, match="label"):
        fine_tune(loans(), task=CLS, config=TINY)


def test_one_class_and_null_or_nan_labels():
    data = loans()
    one = data.set_column(3, "label", pa.array([True] * data.num_rows))
    with pytest.raises(LabelError, match="same label"):
        fine_tune(one, task=CLS, label="label", config=TINY)
    nulls = data.set_column(
        3, "label", pa.array([None, *data["label"].to_pylist()[1:]], pa.bool_())
    )
    with pytest.raises(LabelError, match="1 of 300 rows have a null or NaN label"):
        fine_tune(nulls, task=CLS, label="label", config=TINY)
    nan = data.set_column(3, "label", pa.array([np.nan, 0.0, 1.0] * 100))
    with pytest.raises(LabelError, match="100 of 300"):
        fine_tune(nan, task=CLS, label="label", config=TINY)


def test_long_texts_are_truncated_and_counted():
    data = notes(60)
    texts = data["narrative"].to_pylist()
    texts[:5] = [t * 20 for t in texts[:5]]
    model = fine_tune(
        pa.table({"narrative": texts}),
        task="causal_lm",
        text="narrative",
        config=TINY.replace(epochs=1),
    )
    assert model.training["truncated rows"] == 5


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"eval_fraction": 1.0}, "eval_fraction"),
        ({"batch_size": 0}, "batch_size"),
        ({"numbers": "words"}, "numbers"),
        ({"n_embd": 30, "n_head": 4}, "n_head"),
        ({"epochs": float("nan")}, "epochs"),
    ],
)
def test_config_out_of_range_names_the_field(changes, field):
    with pytest.raises(ConfigFieldError, match=f"TrainingConfig.{field}"):
        TrainingConfig(**changes)
    with pytest.raises(ConfigFieldError, match="lora_rank"):
        TrainingConfig.from_dict({"lora_rank": 4})
    assert TrainingConfig.from_json(TINY.to_json()) == TINY


def test_unknown_base_model_offline_says_how_to_give_a_local_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BaseModelError) as err:
        fine_tune(
            loans(), task=CLS, label="label", base_model="no-such-org/no-such-model", config=TINY
        )
    message = str(err.value)
    assert "no-such-org/no-such-model" in message and "HF_HUB_OFFLINE" in message
    assert "base_model='DIR'" in message


def test_local_base_model_folder(tmp_path):
    """A model saved as a plain Hugging Face folder serves as base_model (loaded offline)."""
    first = fine_tune(loans(), task=CLS, label="label", method="full", config=TINY)
    first.model.save_pretrained(tmp_path / "hf")
    first.tokenizer.save_pretrained(tmp_path / "hf")
    second = fine_tune(
        loans(seed=1),
        task=CLS,
        label="label",
        base_model=str(tmp_path / "hf"),
        config=TINY.replace(lora_targets=("c_attn",)),
    )
    assert second.base.name == str(tmp_path / "hf")
    assert second.metrics["model"]["roc_auc"] > second.metrics["trivial"]["roc_auc"]


def test_nan_loss_fails_naming_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """Divergence cannot be provoked reliably on a tiny model, so the optimiser is made to write
    NaN into the weights at its 4th step (the only stand-in here); everything else is real."""
    import torch

    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def diverging_step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", diverging_step)
    config = TINY.replace(checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=2)
    with pytest.raises(DivergedError) as err:
        fine_tune(loans(), task=CLS, label="label", method="full", config=config)
    # The 4th step's checkpoint would hold NaN weights: refused, so step 2's stays the last good one.
    assert err.value.step == 4
    assert "training step 4" in str(err.value) and "NaN" in str(err.value)
    assert err.value.checkpoint.endswith("00000002.pt") and os.path.exists(err.value.checkpoint)
    state = torch.load(err.value.checkpoint, weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_crash_during_save_keeps_the_previous_version(tmp_path, monkeypatch):
    data = loans()
    old = fine_tune(data, task=CLS, label="label", config=TINY)
    path = old.save(tmp_path / "model")
    new = fine_tune(data, task=CLS, label="label", config=TINY.replace(seed=3))

    def disk_full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FineTunedModel, "curve_png", disk_full)
    with pytest.raises(ModelSaveError, match="No space left on device"):
        new.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no partial folder left
    monkeypatch.undo()
    kept = FineTunedModel.load(path)
    assert np.allclose(kept.predict_proba(data.slice(0, 10)), old.predict_proba(data.slice(0, 10)))


def test_every_error_is_a_fed_assets_error():
    for kind in (
        NoRowsError,
        MissingColumnError,
        LabelError,
        ConfigFieldError,
        BaseModelError,
        DivergedError,
        ModelSaveError,
    ):
        assert issubclass(kind, FedAssetsError)
