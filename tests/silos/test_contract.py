"""One contract suite, run against every silo kind (real files and real servers)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from sqlglot import exp

from fed_assets.errors import (
    FedAssetsError,
    QuerySyntaxError,
    ReadOnlyViolation,
    UnknownColumnError,
    UnknownTableError,
)
from fed_assets.silo import Silo
from tests.silos.contract import NEW_ROW, PEOPLE, SiloCase

KINDS = [
    "duckdb",
    "sqlite",
    "parquet_local",
    "parquet_s3",
    "delta_local",
    "delta_s3",
    "postgres",
    "snowflake",
    "bigquery",
]


@pytest.fixture(params=KINDS)
def case(request) -> SiloCase:
    return request.getfixturevalue(f"{request.param}_case")


def rows(table: pa.Table) -> list[dict]:
    """Rows sorted by id with lower-case column names and naive UTC timestamps."""
    table = table.rename_columns([c.lower() for c in table.column_names])
    out = []
    for row in table.to_pylist():
        for key, value in row.items():
            if isinstance(value, dt.datetime) and value.tzinfo is not None:
                row[key] = value.astimezone(dt.UTC).replace(tzinfo=None)
        out.append(row)
    return sorted(out, key=lambda r: r["id"])


def test_implements_the_protocol(case):
    assert isinstance(case.silo, Silo)
    assert {"people", "nobody"} <= {t.lower() for t in case.silo.tables()}


def test_schema_types(case):
    schema = case.silo.schema("people")
    types = {f.name.lower(): f.type for f in schema}
    assert list(types) == ["id", "name", "amount", "active", "joined"]
    assert pa.types.is_integer(types["id"])
    assert pa.types.is_string(types["name"]) or pa.types.is_large_string(types["name"])
    assert pa.types.is_floating(types["amount"])
    assert pa.types.is_boolean(types["active"])
    assert pa.types.is_timestamp(types["joined"])


def test_read_everything_round_trips(case):
    reader = case.silo.read("people")
    assert isinstance(reader, pa.RecordBatchReader)
    assert rows(reader.read_all()) == rows(PEOPLE)


def test_read_pushes_columns_and_filter(case):
    table = case.silo.read("people", columns=["id", "name"], where="amount > 15").read_all()
    assert [c.lower() for c in table.column_names] == ["id", "name"]
    assert rows(table) == [
        {"id": 2, "name": "Bülent"},
        {"id": 4, "name": None},
        {"id": 5, "name": "Émile"},
    ]


def test_read_limit(case):
    assert case.silo.read("people", limit=2).read_all().num_rows == 2


def test_scan_runs_an_aggregate_in_the_silo(case):
    silo = case.silo
    sql = (
        exp.select("COUNT(*) AS n", "SUM(amount) AS total")
        .from_(silo.table_expression(silo.require_table("people")))
        .sql(silo.dialect)
    )
    table = silo.scan(sql).read_all()
    (row,) = rows_any(table)
    assert row["n"] == 5
    assert row["total"] == pytest.approx(120.75)


def test_scan_keyed_keeps_rows_matching_every_key_list(case):
    silo = case.silo
    sql = (
        exp.select(
            exp.alias_(exp.column("id"), "key_id", quoted=True),
            exp.alias_(exp.column("name"), "key_name", quoted=True),
        )
        .from_(silo.table_expression(silo.require_table("people")))
        .sql(silo.dialect)
    )
    keys = {
        "key_id": pa.array([1, 2, 3, 99], pa.int64()),
        "key_name": pa.array(["Ada", "Chloé", "Émile"]),
    }
    got = rows_any(silo.scan_keyed(sql, keys).read_all())
    assert sorted(r["key_id"] for r in got) == [1, 3]
    empty = silo.scan_keyed(sql, {"key_id": pa.array([], pa.int64())}).read_all()
    assert empty.num_rows == 0


def rows_any(table: pa.Table) -> list[dict]:
    return table.rename_columns([c.lower() for c in table.column_names]).to_pylist()


def test_empty_table_keeps_its_schema(case):
    table = case.silo.read("nobody").read_all()
    assert table.num_rows == 0
    assert [c.lower() for c in table.column_names] == ["id", "name", "amount", "active", "joined"]


def test_stats_count_rows(case):
    assert case.silo.stats("people").rows == 5


def test_version_is_stable_then_changes_with_the_data(case):
    first = case.silo.version("people")
    case.silo.read("people").read_all()
    assert case.silo.version("people") == first
    assert first.method == case.expected_version_method
    case.append_row()
    second = case.silo.version("people")
    assert second.fingerprint != first.fingerprint
    ids = [r["id"] for r in rows(case.silo.read("people").read_all())]
    assert ids == [1, 2, 3, 4, 5, NEW_ROW["id"]]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM people",
        "DROP TABLE people",
        "INSERT INTO people (id) VALUES (9)",
        "SELECT 1; DROP TABLE people",
    ],
)
def test_writes_are_refused_before_reaching_the_silo(case, statement):
    with pytest.raises(ReadOnlyViolation) as info:
        case.silo.scan(statement)
    assert case.silo.name in str(info.value)
    assert case.silo.read("people").read_all().num_rows == 5


def test_unknown_table(case):
    with pytest.raises(UnknownTableError) as info:
        case.silo.read("no_such_table")
    message = str(info.value).lower()
    assert case.silo.name in message and "no_such_table" in message and "people" in message


def test_unknown_column(case):
    with pytest.raises(UnknownColumnError) as info:
        case.silo.read("people", columns=["id", "salary"])
    message = str(info.value).lower()
    assert "salary" in message and "people" in message and "amount" in message


def test_unknown_column_in_filter(case):
    with pytest.raises(UnknownColumnError, match="salary"):
        case.silo.read("people", where="salary > 3")


def test_syntax_error_names_the_silo_and_position(case):
    with pytest.raises(QuerySyntaxError) as info:
        case.silo.scan("SELECT id FROM people WHERE (")
    assert case.silo.name in str(info.value) and "line 1" in str(info.value)


def test_driver_errors_become_fed_assets_errors(case):
    silo = case.silo
    sql = f"SELECT no_such_column FROM {silo.table_expression('people').sql(silo.dialect)}"
    with pytest.raises(FedAssetsError) as info:
        silo.scan(sql).read_all()
    assert silo.name in str(info.value)
