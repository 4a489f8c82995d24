"""Contract case: a dataset in the BigQuery emulator (bqemulator), written with the google client."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.silos.bigquery import BigQuerySilo
from tests.silos.contract import NEW_ROW, PEOPLE, SiloCase

# PEOPLE's columns as BigQuery types; `joined` is a naive timestamp, i.e. a DATETIME.
PEOPLE_SCHEMA = (
    ("id", "INT64"),
    ("name", "STRING"),
    ("amount", "FLOAT64"),
    ("active", "BOOL"),
    ("joined", "DATETIME"),
)


def bigquery_client(env: dict[str, str]):
    """A google BigQuery client on the emulator (anonymous, never dials Google)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project=env["FED_TEST_BIGQUERY_PROJECT"],
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=env["FED_TEST_BIGQUERY_REST"]),
    )


def load_table(client, table_id: str, table: pa.Table, schema=PEOPLE_SCHEMA) -> None:
    """Load an Arrow table with a Parquet load job (unlike DML, this keeps the emulator's
    ``num_rows`` right); ``schema`` gives the BigQuery type of each column."""
    from google.cloud import bigquery
    from google.cloud.bigquery import client as client_module

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        schema=[bigquery.SchemaField(name, kind) for name, kind in schema],
        write_disposition="WRITE_TRUNCATE",
    )
    # The emulator's upload endpoint rejects the client's default multipart content type.
    saved = client_module._GENERIC_CONTENT_TYPE
    client_module._GENERIC_CONTENT_TYPE = "application/octet-stream"
    try:
        client.load_table_from_file(buffer, table_id, job_config=config).result()
    finally:
        client_module._GENERIC_CONTENT_TYPE = saved


def emulator_silo(env: dict[str, str], dataset: str, **overrides) -> BigQuerySilo:
    """A BigQuerySilo on the emulator's ``dataset``, with a scratch dataset for query results."""
    settings = dict(
        name="warehouse",
        region="us",
        project=env["FED_TEST_BIGQUERY_PROJECT"],
        dataset=dataset,
        scratch_dataset=f"{dataset}_scratch",
        emulator_rest_endpoint=env["FED_TEST_BIGQUERY_REST"],
        emulator_grpc_endpoint=env["FED_TEST_BIGQUERY_GRPC"],
    )
    settings.update(overrides)
    return BigQuerySilo(**settings)


@pytest.fixture
def bigquery_dataset(server_env) -> Iterator[tuple[dict[str, str], object, str]]:
    """A fresh, empty dataset on the emulator: ``(env, client, dataset)``; deleted afterwards."""
    env = server_env("bigquery")
    client = bigquery_client(env)
    dataset = f"contract_{uuid.uuid4().hex[:10]}"
    client.create_dataset(dataset)
    yield env, client, dataset
    for name in (dataset, f"{dataset}_scratch"):
        client.delete_dataset(name, delete_contents=True, not_found_ok=True)


@pytest.fixture
def bigquery_case(bigquery_dataset) -> SiloCase:
    env, client, dataset = bigquery_dataset
    project = env["FED_TEST_BIGQUERY_PROJECT"]
    load_table(client, f"{project}.{dataset}.people", PEOPLE)
    load_table(client, f"{project}.{dataset}.nobody", PEOPLE.slice(0, 0))

    def append_row() -> None:
        # The way a writer changes a BigQuery table: DML.
        client.query(
            f"INSERT INTO `{project}.{dataset}.people` (id, name, amount, active, joined) "
            "VALUES (@id, @name, @amount, @active, @joined)",
            job_config=_params(NEW_ROW),
        ).result()

    return SiloCase(
        silo=emulator_silo(env, dataset),
        append_row=append_row,
        expected_version_method="content",
    )


def _params(row: dict) -> object:
    from google.cloud import bigquery

    kinds = dict(PEOPLE_SCHEMA)
    return bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter(name, kinds[name], value) for name, value in row.items()
        ]
    )
