"""Real test servers (PostgreSQL, S3, Snowflake and BigQuery emulators), started and stopped by us.

Each server kind is a module here exposing ``start(workdir: Path) -> Server``. ``python -m
tests.servers run -- <command>`` starts every one, exports their addresses as environment
variables, runs the command and stops them all, even when the command fails. ``tests/conftest.py``
reads the same variables, and starts a server itself when pytest is run without the wrapper.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# The order servers start in; each name is a module of this package.
KINDS = ("postgres", "s3", "snowflake", "bigquery")

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".venv-tools"


@dataclass
class Server:
    """A running test server: the environment variables that reach it, and how to stop it."""

    kind: str
    env: dict[str, str]
    stop: Callable[[], None] = field(repr=False)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], bool], *, what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` until it returns True; raise RuntimeError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as err:  # the server is not up yet
            last = err
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f} s (last error: {last})")


def start(kind: str, workdir: Path) -> Server:
    """Start one server kind with its state under ``workdir``."""
    module = importlib.import_module(f"tests.servers.{kind}")
    workdir.mkdir(parents=True, exist_ok=True)
    return module.start(workdir)


def env_ready(kind: str) -> bool:
    """Whether the wrapper already started ``kind`` (its variables are in the environment)."""
    return os.environ.get(f"FED_TEST_{kind.upper()}_READY") == "1"
