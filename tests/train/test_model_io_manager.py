"""The model IO manager: versioned folders, CURRENT switched last, crash-safe, local and on S3."""

from __future__ import annotations

import errno

import boto3
import dagster as dg
import numpy as np
import pytest

from fed_assets.errors import ConfigurationError
from fed_assets.train.errors import ModelSaveError
from fed_assets.train.fine_tune import fine_tune
from fed_assets.train.model import FineTunedModel
from io_managers.model import ModelIOManager
from tests.train.conftest import TINY, loans

KEY = ["models", "credit"]


@pytest.fixture(scope="module")
def models():
    data = loans()
    first = fine_tune(data, task="sequence_classification", label="label", config=TINY)
    second = fine_tune(
        data, task="sequence_classification", label="label", config=TINY.replace(seed=4)
    )
    return data, first, second


def out_ctx(partition=None):
    return dg.build_output_context(asset_key=dg.AssetKey(KEY), partition_key=partition)


def in_ctx(partition=None):
    return dg.build_input_context(
        asset_key=dg.AssetKey(KEY),
        partition_key=partition,
        asset_partitions_def=dg.StaticPartitionsDefinition(["de", "fr"]) if partition else None,
    )


def same(a: FineTunedModel, b: FineTunedModel, data) -> bool:
    return np.allclose(
        a.predict_proba(data.slice(0, 16)), b.predict_proba(data.slice(0, 16)), atol=1e-6
    )


def test_versions_and_current(tmp_path, models):
    data, first, second = models
    store = ModelIOManager(base_path=str(tmp_path))
    store.handle_output(out_ctx(), first)
    v1 = store.current_version(dg.AssetKey(KEY))
    assert same(store.load_input(in_ctx()), first, data)
    store.handle_output(out_ctx(), second)
    v2 = store.current_version(dg.AssetKey(KEY))
    assert v2 != v1
    assert sorted(
        p.name for p in (tmp_path / "models" / "credit" / "versions").iterdir()
    ) == sorted([v1, v2])
    loaded = store.load_model("models/credit")
    assert same(loaded, second, data)
    card = (tmp_path / "models" / "credit" / "versions" / v2 / "README.md").read_text()
    assert "models/credit" in card and "| logistic_regression |" in card
    assert list((tmp_path / "models" / "credit" / "versions" / v2).rglob("*.safetensors"))


def test_partitions_are_stored_apart(tmp_path, models):
    data, first, second = models
    store = ModelIOManager(base_path=str(tmp_path))
    store.handle_output(out_ctx("de"), first)
    store.handle_output(out_ctx("fr"), second)
    assert same(store.load_input(in_ctx("de")), first, data)
    assert same(store.load_input(in_ctx("fr")), second, data)


def test_crash_while_writing_keeps_the_previous_version_current(tmp_path, models, monkeypatch):
    data, first, second = models
    store = ModelIOManager(base_path=str(tmp_path))
    store.handle_output(out_ctx(), first)
    v1 = store.current_version(dg.AssetKey(KEY))

    def disk_full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FineTunedModel, "curve_png", disk_full)
    with pytest.raises(ModelSaveError, match="previous version stays current"):
        store.handle_output(out_ctx(), second)
    assert store.current_version(dg.AssetKey(KEY)) == v1
    assert [p.name for p in (tmp_path / "models" / "credit" / "versions").iterdir()] == [v1]
    monkeypatch.undo()
    assert same(store.load_input(in_ctx()), first, data)


def test_missing_model_and_wrong_output(tmp_path, models):
    store = ModelIOManager(base_path=str(tmp_path))
    with pytest.raises(ConfigurationError, match="materialise the model asset"):
        store.load_input(in_ctx())
    with pytest.raises(ConfigurationError, match="FineTunedModel"):
        store.handle_output(out_ctx(), {"not": "a model"})


def test_s3_round_trip(server_env, models):
    data, first, second = models
    env = server_env("s3")
    s3 = boto3.client(
        "s3",
        endpoint_url=env["FED_TEST_S3_ENDPOINT"],
        region_name=env["FED_TEST_S3_REGION"],
        aws_access_key_id=env["FED_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=env["FED_TEST_S3_SECRET_KEY"],
    )
    s3.create_bucket(Bucket="models")
    store = ModelIOManager(
        base_path="s3://models/prod",
        s3_endpoint_url=env["FED_TEST_S3_ENDPOINT"],
        s3_access_key_id=env["FED_TEST_S3_ACCESS_KEY"],
        s3_secret_access_key=env["FED_TEST_S3_SECRET_KEY"],
        s3_region=env["FED_TEST_S3_REGION"],
    )
    store.handle_output(out_ctx(), first)
    store.handle_output(out_ctx(), second)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"]]
    assert "prod/models/credit/CURRENT" in keys
    version = store.current_version(dg.AssetKey(KEY))
    assert any(
        k.startswith(f"prod/models/credit/versions/{version}/") and k.endswith(".safetensors")
        for k in keys
    )
    assert same(store.load_input(in_ctx()), second, data)
