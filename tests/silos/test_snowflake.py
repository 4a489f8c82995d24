"""Snowflake-specific silo behaviour: versions, identifiers, types, errors, the Dagster resource."""

from __future__ import annotations

import datetime as dt
import decimal
import time

import pyarrow as pa
import pytest
from dagster import EnvVar, asset, materialize
from dagster_snowflake import SnowflakeResource
from snowflake.connector import errors as sf_errors

from fed_assets.errors import (
    ConfigurationError,
    SiloAuthError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownTableError,
    UnsupportedFunctionError,
)
from fed_assets.silo import BATCH_ROWS
from resources.silos.snowflake import SnowflakeSilo
from tests.servers import free_port
from tests.silos.cases.snowflake import PASSWORD, connect, silo_for


def test_version_falls_back_to_content_and_says_why(snowflake_case):
    silo = snowflake_case.silo
    version = silo.version("people")
    assert version.method == "content"
    assert "LAST_ALTERED" in version.detail and "1970-01-01" in version.detail
    assert "full scan of 5 rows" in version.detail


def test_content_version_sees_an_update_that_keeps_the_row_count(snowflake_database):
    env, database = snowflake_database
    with connect(env, database) as con:
        con.cursor().execute("CREATE TABLE ACCOUNTS (ID INT, BALANCE FLOAT)")
        con.cursor().execute("INSERT INTO ACCOUNTS VALUES (1, 10.0), (2, 20.0)")
    silo = silo_for(env, database)
    before = silo.version("ACCOUNTS")
    with connect(env, database) as con:
        con.cursor().execute("UPDATE ACCOUNTS SET BALANCE = 25.0 WHERE ID = 2")
    after = silo.version("accounts")
    assert silo.stats("accounts").rows == 2
    assert after.fingerprint != before.fingerprint


def test_version_reads_last_altered_when_the_server_maintains_it(snowflake_case, monkeypatch):
    silo = snowflake_case.silo
    altered = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    row = {
        "TABLE_NAME": "people",
        "TABLE_TYPE": "BASE TABLE",
        "ROW_COUNT": 5,
        "BYTES": 2048,
        "LAST_ALTERED": altered,
    }
    monkeypatch.setattr(SnowflakeSilo, "_table_row", lambda self, table: row)

    def no_scan(self, table, why):
        raise AssertionError(f"scanned rows although LAST_ALTERED is usable: {why}")

    monkeypatch.setattr(SnowflakeSilo, "_content_version", no_scan)
    first = silo.version("people")
    assert first.method == "metadata"
    assert "LAST_ALTERED=2025-03-01T12:00:00+00:00" in first.detail
    row["LAST_ALTERED"] = altered + dt.timedelta(seconds=1)
    assert silo.version("people").fingerprint != first.fingerprint


def test_views_fall_back_to_content(snowflake_case, monkeypatch):
    silo = snowflake_case.silo
    row = {
        "TABLE_NAME": "people",
        "TABLE_TYPE": "VIEW",
        "ROW_COUNT": None,
        "BYTES": None,
        "LAST_ALTERED": dt.datetime(2025, 3, 1, tzinfo=dt.UTC),
    }
    monkeypatch.setattr(SnowflakeSilo, "_table_row", lambda self, table: row)
    version = silo.version("people")
    assert version.method == "content"
    assert "view" in version.detail


def test_upper_case_tables_are_listed_as_stored_and_found_in_any_case(snowflake_database):
    env, database = snowflake_database
    with connect(env, database) as con:
        con.cursor().execute("CREATE TABLE CUSTOMERS (ID INT, FULL_NAME VARCHAR)")
        con.cursor().execute("INSERT INTO CUSTOMERS VALUES (1, 'Ada'), (2, 'Grace')")
    silo = silo_for(env, database)
    assert silo.tables() == ["CUSTOMERS"]
    assert silo.schema("customers").names == ["ID", "FULL_NAME"]
    table = silo.read("customers", columns=["full_name"], where="id > 1").read_all()
    assert table.column_names == ["FULL_NAME"]
    assert table.column("FULL_NAME").to_pylist() == ["Grace"]
    assert 'FROM "CUSTOMERS"' in silo.read_sql("customers")


def test_schema_matches_what_reads_return_full_or_empty(snowflake_database):
    env, database = snowflake_database
    with connect(env, database) as con:
        con.cursor().execute(
            "CREATE TABLE TYPED (N NUMBER(10, 2), D DATE, T TIME, B BINARY, V VARIANT, "
            "TZ TIMESTAMP_TZ, I INT, F FLOAT, S VARCHAR(10))"
        )
        con.cursor().execute("CREATE TABLE TYPED_EMPTY LIKE TYPED")
        con.cursor().execute(
            "INSERT INTO TYPED SELECT 12.34, '2024-01-02', '10:11:12', TO_BINARY('AB', 'HEX'), "
            "PARSE_JSON('{\"a\": 1}'), '2024-01-02 03:04:05', 7, 1.5, 'x'"
        )
    silo = silo_for(env, database)
    expected = pa.schema(
        [
            ("N", pa.decimal128(10, 2)),
            ("D", pa.date32()),
            ("T", pa.time64("ns")),
            ("B", pa.binary()),
            ("V", pa.string()),
            ("TZ", pa.timestamp("ns", tz="UTC")),
            ("I", pa.int64()),
            ("F", pa.float64()),
            ("S", pa.string()),
        ]
    )
    assert silo.schema("typed") == expected
    full = silo.read("typed").read_all()
    assert full.schema == expected
    (row,) = full.to_pylist()
    assert row["N"] == decimal.Decimal("12.34") and row["D"] == dt.date(2024, 1, 2)
    assert row["B"] == b"\xab" and row["I"] == 7
    # The connector's own empty result types differ (int64 for NUMBER(10,2), date64, ...).
    empty = silo.read("typed_empty").read_all()
    assert empty.num_rows == 0 and empty.schema == silo.schema("typed_empty") == expected


def test_large_results_stream_in_bounded_batches(snowflake_case):
    reader = snowflake_case.silo.scan(
        "SELECT SEQ4() AS I FROM TABLE(GENERATOR(ROWCOUNT => 250000))"
    )
    sizes = [batch.num_rows for batch in reader]
    assert sum(sizes) == 250_000
    assert len(sizes) > 1 and max(sizes) <= BATCH_ROWS


def test_unknown_table_and_column_in_raw_sql(snowflake_case):
    silo = snowflake_case.silo
    with pytest.raises(UnknownTableError) as info:
        silo.scan("SELECT * FROM no_such_table").read_all()
    assert "'sf'" in str(info.value) and "NO_SUCH_TABLE" in str(info.value)
    assert "people" in str(info.value)  # the fix lists the tables there are
    with pytest.raises(UnknownColumnError, match="SALARY"):
        silo.scan('SELECT salary FROM "people"').read_all()


def test_closed_port_is_unreachable_quickly_and_keeps_the_password_out(snowflake_database):
    env, database = snowflake_database
    port = free_port()
    silo = silo_for(env, database, port=port, password="not-the-Secret-42", login_timeout_s=3)
    started = time.monotonic()
    with pytest.raises(SiloUnreachableError) as info:
        silo.tables()
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "'sf'" in message and str(port) in message and "login_timeout_s" in message
    assert "not-the-Secret-42" not in message
    assert info.value.__cause__ is None  # no driver traceback chained onto the user's error
    with pytest.raises(SiloUnreachableError):
        silo.read("people")


def test_refused_credentials_are_an_auth_error_without_the_password(snowflake_database):
    # fakesnow accepts any login, so feed the connector's own login failure to the silo.
    env, database = snowflake_database
    silo = silo_for(env, database, password="not-the-Secret-42")
    refused = sf_errors.DatabaseError(
        msg="Incorrect username or password was specified (tried not-the-Secret-42).",
        errno=390100,
        sqlstate="08004",
    )
    error = silo.wrap_error(refused)
    assert isinstance(error, SiloAuthError)
    assert "'sf'" in str(error) and "user 'fake'" in str(error) and "EnvVar" in str(error)
    assert "not-the-Secret-42" not in str(error)
    assert "not-the-Secret-42" not in repr(silo)


def test_missing_credentials_are_a_configuration_error(snowflake_database):
    env, database = snowflake_database
    silo = silo_for(env, database, password=None)
    with pytest.raises(ConfigurationError, match="password"):
        silo.tables()


def test_the_silo_connects_through_dagster_snowflake(snowflake_case, monkeypatch):
    monkeypatch.setenv("FED_TEST_SF_PASSWORD", PASSWORD)
    settings = snowflake_case.silo.model_dump()
    settings["password"] = EnvVar("FED_TEST_SF_PASSWORD")
    silo = SnowflakeSilo(**settings)
    resource = silo.snowflake_resource
    assert isinstance(resource, SnowflakeResource)
    with resource.get_connection() as conn:
        assert conn.cursor().execute('SELECT COUNT(*) FROM "people"').fetchone() == (5,)

    @asset
    def people_count(sf: SnowflakeSilo) -> int:
        return sf.read("people").read_all().num_rows

    result = materialize([people_count], resources={"sf": silo})
    assert result.success
    assert result.output_for_node("people_count") == 5


def test_the_emulators_message_for_a_missing_function(snowflake_case):
    # fakesnow (DuckDB underneath) has no SOUNDEX: the silo says which function it lacks, which
    # is what lets a federated query evaluate it above the silo.
    silo = snowflake_case.silo
    with pytest.raises(UnsupportedFunctionError, match=r"no function soundex\(\)") as info:
        silo.scan('SELECT SOUNDEX("name") AS s FROM "people"').read_all()
    assert info.value.silo == "sf" and info.value.function == "soundex"


@pytest.mark.parametrize(
    ("message", "errno", "function"),
    [
        ("SQL compilation error:\nUnknown function JARO_SIMILARITY", 2140, "jaro_similarity"),
        ("Catalog Error: Scalar Function with name soundex does not exist!", 2043, "soundex"),
    ],
)
def test_driver_messages_for_a_missing_function(snowflake_database, message, errno, function):
    env, database = snowflake_database
    silo = silo_for(env, database)
    err = silo.wrap_error(sf_errors.ProgrammingError(msg=message, errno=errno, sqlstate="42601"))
    assert isinstance(err, UnsupportedFunctionError) and err.function == function
    other = silo.wrap_error(
        sf_errors.ProgrammingError(msg="SQL compilation error: syntax error", errno=1003)
    )
    assert not isinstance(other, UnsupportedFunctionError)
