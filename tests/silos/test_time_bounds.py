"""Bounded time against a real PostgreSQL: a slow statement is stopped server-side, a frozen
backend (SIGSTOP, a fair stand-in for a hung silo) does not hold the query, and a query that gives
up cancels its statement in the server (checked in ``pg_stat_activity``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import duckdb
import pytest

from fed_assets.errors import SiloQueryError, SiloTimeoutError
from fed_assets.query import query
from resources.silos.duckdb import DuckDBSilo
from tests.servers import ROOT
from tests.silos.cases.postgres import connect_silo

# Long enough that a statement still running after the test's bound is plainly not finished.
SLEEP_S = 60


def sleeper(postgres_case, **settings):
    """The contract silo, allowed to call pg_sleep (the documented per-silo setting)."""
    return postgres_case.silo.model_copy(update={"allowed_functions": ["pg_sleep"], **settings})


def admin(postgres_case):
    return connect_silo(postgres_case.silo)


def running(con, marker: str) -> list[int]:
    """Backend pids of fed-assets sessions whose active statement contains ``marker``."""
    rows = con.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'fed-assets' "
        "AND state = 'active' AND query LIKE %s",
        (f"%{marker}%",),
    ).fetchall()
    return [r[0] for r in rows]


def wait_for(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_statement_timeout_stops_a_slow_statement_in_the_server(postgres_case):
    silo = sleeper(postgres_case, statement_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(SiloTimeoutError, match=r"silo 'pg'.*time bound of 1 s.*statement timeout"):
        silo.scan(f"SELECT pg_sleep({SLEEP_S}) AS s").read_all()
    assert time.monotonic() - started < 5
    with admin(postgres_case) as con:
        assert running(con, f"pg_sleep({SLEEP_S})") == []


def test_frozen_backend_does_not_hold_the_query_and_is_cancelled(postgres_case):
    silo = sleeper(postgres_case)
    marker = "frozen_marker"
    frozen: list[int] = []
    with admin(postgres_case) as con:

        def freeze() -> None:
            if wait_for(lambda: running(con, marker), 10):
                frozen.extend(running(con, marker))
                os.kill(frozen[0], signal.SIGSTOP)

        freezer = threading.Thread(target=freeze)
        freezer.start()
        started = time.monotonic()
        try:
            with pytest.raises(SiloTimeoutError) as info:
                query(f"SELECT pg_sleep({SLEEP_S}) AS {marker} FROM pg.people", [silo], timeout_s=2)
            waited = time.monotonic() - started
        finally:
            freezer.join()
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        assert frozen, "the statement never showed up in pg_stat_activity"
        assert waited < 6
        message = str(info.value)
        assert "silo 'pg'" in message and "fragment __f0" in message
        assert "time bound of 2 s (timeout_s=2" in message and "cancelled" in message
        # Resumed, the backend finds the cancel request waiting: the statement ends at once.
        assert wait_for(lambda: not running(con, marker), 5)


def test_abandoned_query_cancels_its_statement_in_the_server(postgres_case, tmp_path):
    """Another fragment fails; the PostgreSQL one (bound 300 s) is cancelled, not left running."""
    path = str(tmp_path / "d.duckdb")
    with duckdb.connect(path) as con:
        con.execute("CREATE TABLE t AS SELECT 'not a number' AS v")
    broken = DuckDBSilo(name="d", path=path)
    silo = sleeper(postgres_case)
    marker = "abandoned_marker"
    sql = (
        f"SELECT p.{marker}, x.n FROM (SELECT pg_sleep({SLEEP_S}) AS {marker} FROM pg.people "
        "LIMIT 1) AS p, (SELECT CAST(v AS INTEGER) AS n FROM d.t) AS x"
    )
    with admin(postgres_case) as con:
        failing = DuckDBSilo.scan

        def slow_failure(self, sql):
            wait_for(lambda: running(con, marker), 10)  # fail once PostgreSQL is busy
            return failing(self, sql)

        DuckDBSilo.scan = slow_failure
        try:
            with pytest.raises(SiloQueryError, match="silo 'd'"):
                query(sql, [silo, broken])
        finally:
            DuckDBSilo.scan = failing
        assert wait_for(lambda: not running(con, marker), 5)


def test_query_bound_covers_fragments_that_wait_for_keys(postgres_case):
    silo = sleeper(postgres_case)
    with pytest.raises(SiloTimeoutError, match=r"time bound of 1 s \(query_timeout_s\)"):
        query(f"SELECT pg_sleep({SLEEP_S}) AS s FROM pg.people", [silo], query_timeout_s=1)
    with admin(postgres_case) as con:
        assert wait_for(lambda: not running(con, f"pg_sleep({SLEEP_S})"), 5)


def test_sessions_carry_keepalives_and_a_server_side_bound(postgres_case):
    silo = postgres_case.silo.model_copy(update={"statement_timeout_s": 7.5})
    info = silo.conninfo()
    for setting in ("keepalives='1'", "keepalives_idle=", "tcp_user_timeout="):
        assert setting in info
    with connect_settings(silo) as values:
        assert values == {"statement_timeout": "7500ms", "client_connection_check_interval": "5s"}


class connect_settings:
    """The session settings a fresh connection of ``silo`` starts with (read via the driver)."""

    def __init__(self, silo):
        self.silo = silo

    def __enter__(self):
        conn = self.silo._connect()
        self.conn = conn
        cur = conn.cursor()
        cur.execute(
            "SELECT current_setting('statement_timeout') AS t, "
            "current_setting('client_connection_check_interval') AS c"
        )
        (t, c) = cur.fetchone()
        cur.close()
        return {"statement_timeout": t, "client_connection_check_interval": c}

    def __exit__(self, *exc):
        self.conn.close()


def test_a_statement_does_not_outlive_a_killed_client(postgres_case):
    """The client process dies mid-query (kill -9): the backend notices within
    client_connection_check_interval and ends the statement, instead of running it to its end."""
    silo = sleeper(postgres_case)
    marker = "orphan_marker"
    script = textwrap.dedent(
        f"""
        import json, sys
        from resources.silos.postgres import PostgresSilo
        silo = PostgresSilo.model_validate(json.loads(sys.argv[1]))
        silo.scan("SELECT pg_sleep({SLEEP_S}) AS {marker}").read_all()
        """
    )
    settings = silo.model_dump(by_alias=True, exclude={"policy"})
    child = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(settings)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        with admin(postgres_case) as con:
            assert wait_for(lambda: running(con, marker), 30), "the child's statement never ran"
            child.kill()
            child.wait()
            started = time.monotonic()
            assert wait_for(lambda: not running(con, marker), 15)
            assert time.monotonic() - started < 15  # CLIENT_CHECK_INTERVAL_S is 5
    finally:
        child.kill()
