"""The Parquet results store: atomic local writes, partitions, S3 against a real S3 API server."""

from __future__ import annotations

import boto3
import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fed_assets.errors import ConfigurationError
from io_managers.results import ParquetResultsIOManager

TABLE = pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]})


def out_ctx(key, partition=None):
    return dg.build_output_context(asset_key=dg.AssetKey(key), partition_key=partition)


def in_ctx(key, partition=None):
    return dg.build_input_context(
        asset_key=dg.AssetKey(key),
        partition_key=partition,
        asset_partitions_def=dg.StaticPartitionsDefinition(["p1", "p2"]) if partition else None,
        dagster_type=dg.DagsterType(lambda _, __: True, typing_type=pa.Table, name="T"),
    )


def test_round_trip_local(tmp_path):
    store = ParquetResultsIOManager(base_path=str(tmp_path))
    store.handle_output(out_ctx(["grp", "t"]), TABLE)
    assert pq.read_table(tmp_path / "grp" / "t.parquet").equals(TABLE)
    assert store.load_input(in_ctx(["grp", "t"])).equals(TABLE)


def test_failed_write_leaves_the_old_result_and_no_temporary_file(tmp_path, monkeypatch):
    store = ParquetResultsIOManager(base_path=str(tmp_path))
    store.handle_output(out_ctx(["t"]), TABLE)

    def crash(table, where, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError):
        store.handle_output(out_ctx(["t"]), pa.table({"x": [9]}))
    assert pq.read_table(tmp_path / "t.parquet").equals(TABLE)
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_missing_result_says_to_materialise(tmp_path):
    store = ParquetResultsIOManager(base_path=str(tmp_path))
    with pytest.raises(ConfigurationError, match="materialise"):
        store.load_input(in_ctx(["never"]))


def test_s3_round_trip(server_env):
    env = server_env("s3")
    s3 = boto3.client(
        "s3",
        endpoint_url=env["FED_TEST_S3_ENDPOINT"],
        region_name=env["FED_TEST_S3_REGION"],
        aws_access_key_id=env["FED_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=env["FED_TEST_S3_SECRET_KEY"],
    )
    s3.create_bucket(Bucket="results")
    store = ParquetResultsIOManager(
        base_path="s3://results/prod",
        s3_endpoint_url=env["FED_TEST_S3_ENDPOINT"],
        s3_access_key_id=env["FED_TEST_S3_ACCESS_KEY"],
        s3_secret_access_key=env["FED_TEST_S3_SECRET_KEY"],
        s3_region=env["FED_TEST_S3_REGION"],
    )
    store.handle_output(out_ctx(["grp", "t"], "p1"), TABLE)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="results")["Contents"]]
    assert keys == ["prod/grp/t/p1.parquet"]
    assert store.load_input(in_ctx(["grp", "t"], "p1")).equals(TABLE)
