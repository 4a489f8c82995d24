"""Contract cases: Delta tables on local disk and on the moto S3 server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from resources.silos.delta import DeltaSilo
from tests.silos.cases.parquet import fresh_bucket, s3_settings
from tests.silos.contract import NEW_ROW, PEOPLE, SiloCase


def delta_storage_options(env: dict[str, str]) -> dict[str, str]:
    """deltalake's options for a writer on the test S3 server."""
    return {
        "AWS_ENDPOINT_URL": env["FED_TEST_S3_ENDPOINT"],
        "AWS_ACCESS_KEY_ID": env["FED_TEST_S3_ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": env["FED_TEST_S3_SECRET_KEY"],
        "AWS_REGION": env["FED_TEST_S3_REGION"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }


def write_people(root: str, storage_options: dict[str, str] | None = None) -> Callable[[], None]:
    """Write ``people`` in two commits and an empty ``nobody``; return ``append_row``."""
    write_deltalake(f"{root}/people", PEOPLE.slice(0, 3), storage_options=storage_options)
    write_deltalake(
        f"{root}/people", PEOPLE.slice(3), mode="append", storage_options=storage_options
    )
    write_deltalake(f"{root}/nobody", PEOPLE.schema.empty_table(), storage_options=storage_options)

    def append_row() -> None:
        row = pa.Table.from_pylist([NEW_ROW], schema=PEOPLE.schema)
        write_deltalake(f"{root}/people", row, mode="append", storage_options=storage_options)

    return append_row


@pytest.fixture
def delta_local_case(tmp_path: Path) -> SiloCase:
    root = tmp_path / "delta"
    append_row = write_people(str(root))
    return SiloCase(silo=DeltaSilo(name="lakehouse", root=str(root)), append_row=append_row)


@pytest.fixture
def delta_s3_case(server_env) -> SiloCase:
    env = server_env("s3")
    bucket = fresh_bucket(env)
    append_row = write_people(f"s3://{bucket}/delta", delta_storage_options(env))
    silo = DeltaSilo(name="s3lakehouse", root=f"s3://{bucket}/delta", **s3_settings(env))
    return SiloCase(silo=silo, append_row=append_row)
