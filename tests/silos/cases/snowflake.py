"""Contract case: the fakesnow emulator over HTTP, one fresh database per test.

The contract tables are created with quoted lower-case names (``"people"``, ``"id"``), so the
silo lists and returns them exactly as the other kinds do; ``test_snowflake.py`` covers tables
created the usual Snowflake way, with unquoted (upper-case) names.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import snowflake.connector

from resources.silos.snowflake import SnowflakeSilo
from tests.silos.contract import NEW_ROW, PEOPLE, SiloCase

# fakesnow accepts any credentials; these are the ones its documentation uses.
ACCOUNT, USER, PASSWORD = "fakesnow", "fake", "snow"
SCHEMA = "PUBLIC"

COLUMNS = (
    '("id" NUMBER(38, 0), "name" VARCHAR, "amount" FLOAT, "active" BOOLEAN, "joined" TIMESTAMP_NTZ)'
)


def connect(env: dict[str, str], database: str) -> snowflake.connector.SnowflakeConnection:
    """A writer's connection to ``database`` on the emulator described by ``env``."""
    return snowflake.connector.connect(
        account=ACCOUNT,
        user=USER,
        password=PASSWORD,
        host=env["FED_TEST_SNOWFLAKE_HOST"],
        port=int(env["FED_TEST_SNOWFLAKE_PORT"]),
        protocol="http",
        database=database,
        schema=SCHEMA,
        login_timeout=10,
        platform_detection_timeout_seconds=0.0,  # no cloud metadata probes (stalls offline)
    )


def silo_for(env: dict[str, str], database: str, **overrides) -> SnowflakeSilo:
    """A ``SnowflakeSilo`` named ``sf`` on the emulator, exposing ``database.PUBLIC``."""
    settings = {
        "name": "sf",
        "region": "us",
        "account": ACCOUNT,
        "user": USER,
        "password": PASSWORD,
        "database": database,
        "snowflake_schema": SCHEMA,
        "host": env["FED_TEST_SNOWFLAKE_HOST"],
        "port": int(env["FED_TEST_SNOWFLAKE_PORT"]),
        "protocol": "http",
        "login_timeout_s": 5,
        # An emulator bug answers HTTP 500, which the connector would otherwise retry for minutes.
        "network_timeout_s": 20,
    }
    settings.update(overrides)
    return SnowflakeSilo(**settings)


def insert_people(con: snowflake.connector.SnowflakeConnection, rows: list[dict]) -> None:
    """Insert contract rows into ``"people"`` as a writer would (one multi-row INSERT)."""
    con.cursor().executemany(
        'INSERT INTO "people" VALUES (%s, %s, %s, %s, %s)', [tuple(r.values()) for r in rows]
    )


@pytest.fixture
def snowflake_database(
    server_env: Callable[[str], dict[str, str]],
) -> Iterator[tuple[dict[str, str], str]]:
    """A fresh database with an empty ``PUBLIC`` schema: ``(env, database name)``; dropped after."""
    env = server_env("snowflake")
    database = f"FED_{uuid.uuid4().hex[:12].upper()}"
    with connect(env, database) as con:
        con.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        con.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {database}.{SCHEMA}")
    yield env, database
    with connect(env, database) as con:
        # DROP SCHEMA, not DATABASE: fakesnow cannot parse DROP DATABASE.
        con.cursor().execute(f"DROP SCHEMA IF EXISTS {database}.{SCHEMA} CASCADE")


@pytest.fixture
def snowflake_case(snowflake_database: tuple[dict[str, str], str]) -> SiloCase:
    env, database = snowflake_database
    with connect(env, database) as con:
        con.cursor().execute(f'CREATE TABLE "people" {COLUMNS}')
        con.cursor().execute(f'CREATE TABLE "nobody" {COLUMNS}')
        insert_people(con, PEOPLE.to_pylist())

    def append_row() -> None:
        with connect(env, database) as con:
            insert_people(con, [NEW_ROW])

    # fakesnow freezes INFORMATION_SCHEMA.TABLES.LAST_ALTERED, so the silo falls back to content.
    return SiloCase(
        silo=silo_for(env, database), append_row=append_row, expected_version_method="content"
    )
