"""Contract cases: Parquet folders on local disk and on the moto S3 server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from resources.silos.parquet import ParquetSilo
from tests.silos.contract import NEW_ROW, PEOPLE, SiloCase


def write_people(fs: pafs.FileSystem, base: str) -> Callable[[], None]:
    """Write ``people/`` as two files and ``nobody/`` as one zero-row file; return ``append_row``."""
    fs.create_dir(f"{base}/people", recursive=True)
    fs.create_dir(f"{base}/nobody", recursive=True)
    pq.write_table(PEOPLE.slice(0, 3), f"{base}/people/part-0.parquet", filesystem=fs)
    pq.write_table(PEOPLE.slice(3), f"{base}/people/part-1.parquet", filesystem=fs)
    pq.write_table(PEOPLE.schema.empty_table(), f"{base}/nobody/part-0.parquet", filesystem=fs)

    def append_row() -> None:
        row = pa.Table.from_pylist([NEW_ROW], schema=PEOPLE.schema)
        pq.write_table(row, f"{base}/people/part-2.parquet", filesystem=fs)

    return append_row


def s3_settings(env: dict[str, str]) -> dict[str, str]:
    """The silo settings that reach the test S3 server."""
    return {
        "s3_endpoint_url": env["FED_TEST_S3_ENDPOINT"],
        "s3_access_key_id": env["FED_TEST_S3_ACCESS_KEY"],
        "s3_secret_access_key": env["FED_TEST_S3_SECRET_KEY"],
        "s3_region": env["FED_TEST_S3_REGION"],
    }


def s3_filesystem(env: dict[str, str]) -> pafs.S3FileSystem:
    """A writer's view of the test S3 server."""
    host = env["FED_TEST_S3_ENDPOINT"].split("://", 1)[1]
    return pafs.S3FileSystem(
        endpoint_override=host,
        scheme="http",
        access_key=env["FED_TEST_S3_ACCESS_KEY"],
        secret_key=env["FED_TEST_S3_SECRET_KEY"],
        region=env["FED_TEST_S3_REGION"],
    )


def fresh_bucket(env: dict[str, str]) -> str:
    """Create an empty bucket with a unique name on the test S3 server."""
    bucket = f"fed-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=env["FED_TEST_S3_ENDPOINT"],
        aws_access_key_id=env["FED_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=env["FED_TEST_S3_SECRET_KEY"],
        region_name=env["FED_TEST_S3_REGION"],
    ).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def parquet_local_case(tmp_path: Path) -> SiloCase:
    root = tmp_path / "lake"
    append_row = write_people(pafs.LocalFileSystem(), str(root))
    return SiloCase(
        silo=ParquetSilo(name="lake", root=str(root), region="us"), append_row=append_row
    )


@pytest.fixture
def parquet_s3_case(server_env) -> SiloCase:
    env = server_env("s3")
    bucket = fresh_bucket(env)
    append_row = write_people(s3_filesystem(env), f"{bucket}/lake")
    silo = ParquetSilo(name="s3lake", root=f"s3://{bucket}/lake", region="us", **s3_settings(env))
    return SiloCase(silo=silo, append_row=append_row)
