"""Shared fixtures: real test servers (started here unless ``python -m tests.servers`` did)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import env_ready, start

pytest_plugins = [
    "tests.silos.cases.duckdb",
    "tests.silos.cases.sqlite",
    "tests.silos.cases.parquet",
    "tests.silos.cases.delta",
    "tests.silos.cases.postgres",
    "tests.silos.cases.snowflake",
    "tests.silos.cases.bigquery",
]


@pytest.fixture(scope="session")
def server_env() -> Iterator[Callable[[str], dict[str, str]]]:
    """``server_env(kind)`` → the ``FED_TEST_<KIND>_*`` variables of a running server of ``kind``.

    Under ``make test`` the servers run already; otherwise the first call starts one, and it is
    stopped when the session ends. A server that cannot start fails the tests that need it.
    """
    started = {}

    def get(kind: str) -> dict[str, str]:
        prefix = f"FED_TEST_{kind.upper()}_"
        if env_ready(kind):
            return {k: v for k, v in os.environ.items() if k.startswith(prefix)}
        if kind not in started:
            started[kind] = start(kind, Path(tempfile.mkdtemp(prefix=f"fed-{kind}-")))
        return started[kind].env

    yield get
    for server in started.values():
        server.stop()
