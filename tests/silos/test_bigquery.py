"""BigQuery silo behaviour beyond the shared contract: versions, result paths, errors."""

from __future__ import annotations

import datetime as dt
import time
from types import SimpleNamespace

import pyarrow as pa
import pytest
from google.api_core import exceptions as gexc

from fed_assets.errors import (
    ConfigurationError,
    SiloAuthError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownTableError,
    UnsupportedFunctionError,
)
from resources.silos.bigquery import TMP_PREFIX, BigQuerySilo
from tests.servers import free_port
from tests.silos.cases.bigquery import emulator_silo

# Large enough that REST pages would take about a second, small enough to build in 0.1 s.
BIG_ROWS = 50_000


def test_version_falls_back_to_content_and_says_why(bigquery_case):
    silo = bigquery_case.silo
    first = silo.version("people")
    assert first.method == "content"
    assert "emulator" in first.detail and "modified" in first.detail
    assert "5 rows" in first.detail
    bigquery_case.append_row()
    second = silo.version("people")
    assert second.fingerprint != first.fingerprint and "6 rows" in second.detail


def test_version_from_content_flag_is_named_as_the_reason(bigquery_dataset, bigquery_case):
    env, _, dataset = bigquery_dataset
    silo = emulator_silo(env, dataset, version_from_content=True)
    version = silo.version("people")
    assert version.method == "content" and "version_from_content" in version.detail


def test_metadata_version_reads_modified_and_etag(monkeypatch):
    silo = BigQuerySilo(name="wh", project="p", dataset="d")
    meta = SimpleNamespace(
        table_id="people",
        table_type="TABLE",
        modified=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
        etag="abc",
    )
    monkeypatch.setattr(BigQuerySilo, "_table", lambda self, table: meta)
    first = silo.version("people")
    assert first.method == "metadata" and "abc" in first.detail
    meta.etag = "abd"
    assert silo.version("people").fingerprint != first.fingerprint
    meta.table_type = "VIEW"  # a view's metadata says nothing about its sources' rows
    monkeypatch.setattr(BigQuerySilo, "_fingerprint", lambda self, table: (3, 42))
    view = silo.version("people")
    assert view.method == "content" and "VIEW" in view.detail


def test_stats_follow_dml_on_the_emulator(bigquery_case):
    bigquery_case.append_row()
    assert bigquery_case.silo.stats("people").rows == 6


def test_large_result_streams_through_a_scratch_table(bigquery_dataset):
    env, client, dataset = bigquery_dataset
    project = env["FED_TEST_BIGQUERY_PROJECT"]
    client.query(
        f"CREATE TABLE `{project}.{dataset}.big` AS SELECT x AS id, CAST(x AS STRING) AS s "
        f"FROM UNNEST(GENERATE_ARRAY(1, {BIG_ROWS})) AS x"
    ).result()
    silo = emulator_silo(env, dataset)
    sql = (
        f"SELECT id, s, id * 2 AS twice FROM `{project}`.`{dataset}`.`big` "
        "WHERE MOD(id, 1) = 0 ORDER BY id DESC"
    )
    started = time.perf_counter()
    reader = silo.scan(sql)
    assert reader.schema.names == ["id", "s", "twice"]
    assert reader.schema.field("twice").type == pa.int64()
    table = reader.read_all()
    elapsed = time.perf_counter() - started
    assert table.num_rows == BIG_ROWS
    ids = table.column("id").to_pylist()
    assert ids == list(range(BIG_ROWS, 0, -1))  # ORDER BY survives the scratch table
    assert table.column("twice").to_pylist()[:2] == [2 * BIG_ROWS, 2 * BIG_ROWS - 2]
    assert table.column("s").to_pylist()[-1] == "1"
    leftovers = [t.table_id for t in client.list_tables(f"{dataset}_scratch")]
    assert not [t for t in leftovers if t.startswith(TMP_PREFIX)]
    # REST pages took ~1 s for these rows; the scratch table path ~0.04 s.
    assert elapsed < 10, f"{BIG_ROWS} rows took {elapsed:.1f} s"


def test_rest_path_gives_the_same_result_as_the_scratch_path(bigquery_case):
    silo = bigquery_case.silo
    rest = BigQuerySilo(**{**silo.model_dump(), "scratch_dataset": None})
    people = silo.table_expression("people").sql(silo.dialect)
    sql = f"SELECT id, name, joined, amount * 2 AS double_amount FROM {people} ORDER BY id"
    via_scratch = silo.scan(sql).read_all()
    via_rest = rest.scan(sql).read_all()
    assert via_rest.schema == via_scratch.schema
    assert via_rest.to_pylist() == via_scratch.to_pylist()
    assert via_scratch.schema.field("joined").type == pa.timestamp("us")


def test_plain_read_keeps_the_requested_column_order(bigquery_case):
    table = bigquery_case.silo.read("people", columns=["name", "id"], where="id < 3").read_all()
    assert table.column_names == ["name", "id"]
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == [
        {"name": "Ada", "id": 1},
        {"name": "Bülent", "id": 2},
    ]


def test_unknown_table_and_column_inside_a_query(bigquery_case):
    silo = bigquery_case.silo
    people = silo.table_expression("people").sql(silo.dialect)
    with pytest.raises(UnknownTableError, match="no_such_table"):
        silo.scan(f"SELECT COUNT(*) AS n FROM {silo.table_expression('no_such_table').sql()}")
    with pytest.raises(UnknownColumnError, match="salary"):
        silo.scan(f"SELECT SUM(salary) AS s FROM {people}").read_all()


def test_unreachable_rest_endpoint():
    port = free_port()  # nothing listens here
    silo = BigQuerySilo(
        name="gone",
        project="test-proj",
        dataset="d",
        emulator_rest_endpoint=f"http://127.0.0.1:{port}",
        timeout_s=1.0,
    )
    started = time.perf_counter()
    with pytest.raises(SiloUnreachableError) as info:
        silo.tables()
    assert "gone" in str(info.value) and str(port) in str(info.value)
    assert time.perf_counter() - started < 10  # timeout_s bounds the retries
    with pytest.raises(SiloUnreachableError):
        silo.scan("SELECT 1 AS one")


def test_unreachable_storage_endpoint(bigquery_case):
    silo = bigquery_case.silo
    broken = BigQuerySilo(
        **{
            **silo.model_dump(),
            "emulator_grpc_endpoint": f"127.0.0.1:{free_port()}",
            "timeout_s": 1.0,
        },
    )
    with pytest.raises(SiloUnreachableError) as info:
        broken.read("people").read_all()
    assert "warehouse" in str(info.value) and broken.emulator_grpc_endpoint in str(info.value)


def test_auth_errors_name_the_fix():
    silo = BigQuerySilo(name="wh", project="p", dataset="d")
    denied = gexc.Forbidden("Access Denied: Table p:d.t", errors=[{"reason": "accessDenied"}])
    error = silo.wrap_error(denied, table="t")
    assert isinstance(error, SiloAuthError)
    assert "'wh'" in str(error) and "gcp_credentials" in str(error)
    quota = gexc.Forbidden("Quota exceeded", errors=[{"reason": "quotaExceeded"}])
    assert not isinstance(silo.wrap_error(quota), SiloAuthError)


def test_malformed_credentials_are_a_configuration_error():
    silo = BigQuerySilo(name="wh", project="p", dataset="d", gcp_credentials="not a key")
    with pytest.raises(ConfigurationError, match="gcp_credentials"):
        silo.tables()


def test_table_expression_is_fully_qualified():
    silo = BigQuerySilo(name="wh", project="my-proj", dataset="sales")
    assert silo.table_expression("orders").sql("bigquery") == "`my-proj`.`sales`.`orders`"


def test_the_emulators_message_for_an_unknown_function(bigquery_dataset):
    env, _, dataset = bigquery_dataset
    silo = emulator_silo(env, dataset, allowed_functions=["no_such_function"])
    with pytest.raises(UnsupportedFunctionError) as info:
        silo.scan("SELECT no_such_function(1) AS x").read_all()
    assert info.value.silo == "warehouse" and info.value.function == "no_such_function"


@pytest.mark.parametrize(
    ("message", "function"),
    [
        ("Function not found: jaro_similarity at [1:8]", "jaro_similarity"),
        (
            "Query execution failed: Catalog Error: Scalar Function with name foo does not exist!",
            "foo",
        ),
    ],
)
def test_driver_messages_for_a_missing_function(message, function):
    silo = BigQuerySilo(name="bq", project="p", dataset="d")
    err = silo.wrap_error(gexc.BadRequest(message))
    assert isinstance(err, UnsupportedFunctionError) and err.function == function
    assert "no function" in str(err) and "'bq'" in str(err)
    assert not isinstance(
        silo.wrap_error(gexc.BadRequest("Syntax error at [1:1]")), UnsupportedFunctionError
    )
