"""Contract case: a real PostgreSQL 15 server, one fresh schema per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from resources.silos.postgres import PostgresSilo
from tests.silos.contract import NEW_ROW, PEOPLE, SiloCase

COLUMNS = "(id bigint, name text, amount double precision, active boolean, joined timestamp)"


def connect(env: dict[str, str]) -> psycopg.Connection:
    """A writer's connection (autocommit) to the test server described by ``env``."""
    return psycopg.connect(
        host=env["FED_TEST_POSTGRES_HOST"],
        port=int(env["FED_TEST_POSTGRES_PORT"]),
        user=env["FED_TEST_POSTGRES_USER"],
        password=env["FED_TEST_POSTGRES_PASSWORD"],
        dbname=env["FED_TEST_POSTGRES_DATABASE"],
        autocommit=True,
    )


def connect_silo(silo):
    """A writer's connection to the server the silo reads (the silo itself cannot write)."""
    return connect(
        {
            "FED_TEST_POSTGRES_HOST": silo.host,
            "FED_TEST_POSTGRES_PORT": str(silo.port),
            "FED_TEST_POSTGRES_USER": silo.user,
            "FED_TEST_POSTGRES_PASSWORD": silo.password,
            "FED_TEST_POSTGRES_DATABASE": silo.database,
        }
    )


def flush_stats(con: psycopg.Connection) -> None:
    """Make this session's table counters visible to others now (they are flushed lazily)."""
    con.execute("SELECT pg_stat_force_next_flush()")
    con.execute("SELECT 1")  # the flush happens when the session next goes idle


def silo_for(env: dict[str, str], schema: str, **overrides) -> PostgresSilo:
    """A ``PostgresSilo`` named ``pg`` on the test server, exposing ``schema``."""
    settings = {
        "name": "pg",
        "region": "eu",
        "host": env["FED_TEST_POSTGRES_HOST"],
        "port": int(env["FED_TEST_POSTGRES_PORT"]),
        "user": env["FED_TEST_POSTGRES_USER"],
        "password": env["FED_TEST_POSTGRES_PASSWORD"],
        "database": env["FED_TEST_POSTGRES_DATABASE"],
        "schema": schema,
        "connect_timeout_s": 5,
    }
    settings.update(overrides)
    return PostgresSilo(**settings)


@pytest.fixture
def postgres_schema(server_env: Callable[[str], dict[str, str]]) -> Iterator[tuple[dict, str]]:
    """A fresh, empty schema on the test server: ``(env, schema name)``; dropped afterwards."""
    env = server_env("postgres")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with connect(env) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
    yield env, schema
    with connect(env) as con:
        con.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def postgres_case(postgres_schema: tuple[dict, str]) -> SiloCase:
    env, schema = postgres_schema
    with connect(env) as con:
        con.execute(f'CREATE TABLE "{schema}".people {COLUMNS}')
        con.execute(f'CREATE TABLE "{schema}".nobody {COLUMNS}')
        with con.cursor().copy(f'COPY "{schema}".people FROM STDIN') as copy:
            for row in PEOPLE.to_pylist():
                copy.write_row(tuple(row.values()))
        flush_stats(con)

    def append_row() -> None:
        with connect(env) as con:
            con.execute(
                f'INSERT INTO "{schema}".people VALUES (%s, %s, %s, %s, %s)',
                tuple(NEW_ROW.values()),
            )
            flush_stats(con)

    return SiloCase(silo=silo_for(env, schema), append_row=append_row)
