"""PostgreSQL-specific silo behaviour: credentials, reachability, types, read-only, streaming,
pooled sessions."""

from __future__ import annotations

import datetime as dt
import decimal
import gc
import threading
import time

import pyarrow as pa
import pytest
from dagster import build_resources

from fed_assets.errors import (
    ConfigurationError,
    ReadOnlyViolation,
    SiloAuthError,
    SiloQueryError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownTableError,
    UnsafeFunctionError,
)
from fed_assets.silo import BATCH_ROWS
from resources.silos._pool import POOL_IDLE_MAX
from tests.servers import free_port
from tests.silos.cases.postgres import connect, connect_silo, flush_stats, silo_for


def test_wrong_password_is_an_auth_error_without_the_password(postgres_schema):
    env, schema = postgres_schema
    silo = silo_for(env, schema, password="not-the-Secret-42")
    with pytest.raises(SiloAuthError) as info:
        silo.tables()
    message = str(info.value)
    assert "'pg'" in message and "password" in message
    assert "not-the-Secret-42" not in message
    assert env["FED_TEST_POSTGRES_PASSWORD"] not in message
    assert "not-the-Secret-42" not in repr(silo)


def test_closed_port_is_unreachable_quickly(postgres_schema):
    env, schema = postgres_schema
    silo = silo_for(env, schema, port=free_port(), connect_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(SiloUnreachableError) as info:
        silo.scan("SELECT 1").read_all()
    assert time.monotonic() - started < 3
    assert "'pg'" in str(info.value) and str(silo.port) in str(info.value)


def test_missing_database_is_a_configuration_error(postgres_schema):
    env, schema = postgres_schema
    with pytest.raises(ConfigurationError, match="no_such_db"):
        silo_for(env, schema, database="no_such_db").tables()


def test_numeric_columns_come_back_as_numbers(postgres_schema):
    env, schema = postgres_schema
    with connect(env) as con:
        con.execute(f'CREATE TABLE "{schema}".money (price numeric(10, 2), ratio numeric)')
        con.execute(f"INSERT INTO \"{schema}\".money VALUES (12.34, 0.125), (NULL, 'NaN')")
    silo = silo_for(env, schema)
    expected = pa.schema([("price", pa.decimal128(10, 2)), ("ratio", pa.float64())])
    assert silo.schema("money") == expected
    table = silo.read("money").read_all()
    assert table.schema == expected
    assert table.column("price").to_pylist() == [decimal.Decimal("12.34"), None]
    ratio = table.column("ratio").to_pylist()
    assert ratio[0] == 0.125 and ratio[1] != ratio[1]  # NaN
    total = silo.scan(f'SELECT sum(price) AS s FROM "{schema}".money').read_all()
    assert float(total.column("s")[0].as_py()) == pytest.approx(12.34)


@pytest.mark.parametrize(
    "sql",
    [
        "WITH x AS (INSERT INTO {t} (id) VALUES (99) RETURNING id) SELECT * FROM x",
        "SELECT * INTO stolen FROM {t}",
    ],
)
def test_hidden_writes_are_refused(postgres_case, sql):
    silo = postgres_case.silo
    sql = sql.format(t=silo.table_expression("people").sql("postgres"))
    with pytest.raises(ReadOnlyViolation, match="'pg'"):
        silo.scan(sql)
    # The session itself is read-only too, should a write slip past the query check.
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        silo._scan(sql).read_all()
    assert silo.read("people").read_all().num_rows == 5
    assert "stolen" not in silo.tables()


def test_large_scan_streams_in_several_batches(postgres_schema):
    env, schema = postgres_schema
    n = 200_000
    with connect(env) as con:
        con.execute(
            f'CREATE TABLE "{schema}".big AS '
            "SELECT g::bigint AS id, md5(g::text) AS tag FROM generate_series(1, %s) g",
            (n,),
        )
    reader = silo_for(env, schema).read("big")
    sizes = [batch.num_rows for batch in reader]
    assert len(sizes) >= 2 and max(sizes) <= BATCH_ROWS
    assert sum(sizes) == n


def test_stats_after_analyze(postgres_case):
    silo = postgres_case.silo
    with connect_silo(silo) as con:
        con.execute(f"ANALYZE {silo.table_expression('people').sql('postgres')}")
    stats = silo.stats("people")
    assert stats.rows == 5 and stats.bytes > 0
    assert stats.columns["id"].ndv == 5
    assert (stats.columns["id"].min, stats.columns["id"].max) == (1, 5)
    assert stats.columns["name"].null_count == 1
    assert stats.columns["amount"].min == 10.5 and stats.columns["amount"].max == 50.0
    assert stats.columns["joined"].min == dt.datetime(2024, 1, 1, 9, 30)
    assert stats.columns["active"].ndv == 2


def test_stats_before_analyze_use_live_tuples(postgres_case):
    stats = postgres_case.silo.stats("nobody")
    assert stats.rows == 0
    assert postgres_case.silo.stats("people").rows == 5


def test_views_are_tables_and_follow_their_source(postgres_case):
    silo = postgres_case.silo
    people = silo.table_expression("people").sql("postgres")
    with connect_silo(silo) as con:
        con.execute(f'CREATE VIEW "{silo.schema_}".actives AS SELECT id FROM {people} WHERE active')
    assert "actives" in silo.tables()
    first = silo.version("actives")
    assert silo.version("actives") == first and first.method == "metadata"
    postgres_case.append_row()
    assert silo.version("actives").fingerprint != first.fingerprint


def test_truncate_changes_the_version(postgres_case):
    silo = postgres_case.silo
    first = silo.version("people")
    with connect_silo(silo) as con:
        con.execute(f"TRUNCATE {silo.table_expression('people').sql('postgres')}")
        flush_stats(con)
    assert silo.version("people").fingerprint != first.fingerprint


def test_driver_errors_name_table_and_column(postgres_case):
    silo = postgres_case.silo
    with pytest.raises(UnknownTableError, match="'ghost'"):
        silo.scan(f'SELECT * FROM "{silo.schema_}".ghost').read_all()
    with pytest.raises(UnknownColumnError, match="'salary'"):
        silo.scan(f"SELECT salary FROM {silo.table_expression('people').sql('postgres')}")


def test_consecutive_scans_reuse_one_session(postgres_case):
    silo = postgres_case.silo
    first = backend_pid(silo)
    assert backend_pid(silo) == first
    silo.tables()
    silo.schema("people")
    assert backend_pid(silo) == first
    assert silo._pool.idle_count() == 1


def test_session_the_server_ended_is_replaced_silently(postgres_case):
    silo = postgres_case.silo
    old = end_pooled_session(silo)
    new = backend_pid(silo)
    assert new != old
    assert silo.read("people").read_all().num_rows == 5
    assert backend_pid(silo) == new


def test_catalog_query_on_an_ended_session_is_retried(postgres_case):
    silo = postgres_case.silo
    end_pooled_session(silo)
    assert silo.tables() == ["nobody", "people"]


@pytest.mark.parametrize("leave", ["drop", "close"])
def test_reader_left_halfway_does_not_return_a_busy_session(postgres_schema, leave):
    env, schema = postgres_schema
    n = 500_000  # ~25 MB: the server is still sending when the first batch arrives
    with connect(env) as con:
        con.execute(
            f'CREATE TABLE "{schema}".big AS '
            "SELECT g::bigint AS id, md5(g::text) AS tag FROM generate_series(1, %s) g",
            (n,),
        )
    silo = silo_for(env, schema)
    reader = silo.scan(f'SELECT pg_backend_pid() AS pid, id FROM "{schema}".big ORDER BY id')
    first = reader.read_next_batch()
    assert 0 < first.num_rows < n
    busy = first.column(0)[0].as_py()
    if leave == "close":
        reader.close()
    del reader
    gc.collect()
    assert silo._pool.idle_count() == 0
    total = silo.scan(f'SELECT count(*) AS n, sum(id) AS s FROM "{schema}".big').read_all()
    assert total.to_pylist() == [{"n": n, "s": n * (n + 1) // 2}]
    assert backend_pid(silo) != busy


def test_failed_query_closes_its_session(postgres_case):
    silo = postgres_case.silo
    old = backend_pid(silo)
    with pytest.raises(UnknownTableError):
        silo.scan(f'SELECT * FROM "{silo.schema_}".ghost').read_all()
    assert silo._pool.idle_count() == 0
    with pytest.raises(SiloQueryError, match="division by zero"):
        silo.scan("SELECT 1 / (g - 150000) AS x FROM generate_series(1, 200000) g").read_all()
    assert silo._pool.idle_count() == 0
    assert backend_pid(silo) != old


def test_reused_session_stays_read_only(postgres_case):
    with pytest.raises(UnsafeFunctionError, match=r"set_config\(\).*allowed_functions"):
        postgres_case.silo.scan("SELECT set_config('default_transaction_read_only', 'off', false)")
    # A silo that allows it (the documented per-silo setting) still gets a read-only session back.
    silo = postgres_case.silo.model_copy(
        update={"allowed_functions": ["set_config", "current_setting"]}
    )
    people = silo.table_expression("people").sql("postgres")
    opened = silo.scan(
        "SELECT pg_backend_pid() AS pid, "
        "set_config('default_transaction_read_only', 'off', false) AS ro"
    ).read_all()
    assert opened.column("ro")[0].as_py() == "off"
    again = silo.scan(
        "SELECT pg_backend_pid() AS pid, current_setting('default_transaction_read_only') AS ro"
    ).read_all()
    assert again.to_pylist() == [{"pid": opened.column("pid")[0].as_py(), "ro": "on"}]
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        silo._scan(
            f"WITH x AS (INSERT INTO {people} (id) VALUES (99) RETURNING id) SELECT * FROM x"
        ).read_all()
    assert silo.read("people").read_all().num_rows == 5


def test_concurrent_scans_share_a_bounded_pool(postgres_case):
    silo = postgres_case.silo
    results, errors = [], []

    def work() -> None:
        try:
            for _ in range(10):
                results.append(silo.read("people", columns=["id"]).read_all().num_rows)
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [5] * 80
    assert 1 <= silo._pool.idle_count() <= POOL_IDLE_MAX


def test_idle_sessions_expire(postgres_case):
    silo = postgres_case.silo
    old = backend_pid(silo)
    silo._pool.idle_s = 0.0
    assert backend_pid(silo) != old
    with connect_silo(silo) as admin:
        wait_until_gone(admin, old)


def test_pool_closes_with_close_pool_and_dagster_teardown(postgres_case):
    silo = postgres_case.silo
    pid = backend_pid(silo)
    silo.close_pool()
    assert silo._pool.idle_count() == 0
    with build_resources({"pg": silo}) as resources:
        in_run = backend_pid(resources.pg)
        assert resources.pg._pool.idle_count() == 1
    with connect_silo(silo) as admin:
        wait_until_gone(admin, pid)
        wait_until_gone(admin, in_run)


def backend_pid(silo) -> int:
    """The server process id of the session that runs the silo's next scan."""
    return silo.scan("SELECT pg_backend_pid() AS pid").read_all().column("pid")[0].as_py()


def end_pooled_session(silo) -> int:
    """Pool a session, have the server end it (as a restart or idle timeout would); its pid."""
    pid = backend_pid(silo)
    with connect_silo(silo) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until_gone(admin, pid)
    assert silo._pool.idle_count() == 1  # the dead session still waits there
    return pid


def wait_until_gone(admin, pid: int, timeout: float = 5.0) -> None:
    """Wait until the server process ``pid`` has exited; fail the test if it outlives ``timeout``."""
    deadline = time.monotonic() + timeout
    while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
        assert time.monotonic() < deadline, f"backend {pid} still runs"
        time.sleep(0.05)
