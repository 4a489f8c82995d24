"""A throwaway BigQuery emulator (bqemulator: REST + Storage Read gRPC) for the test session.

bqemulator lives in its own virtualenv, ``.venv-tools/bqemulator``: installed into the test
environment it registers a pytest plugin that fails to import. It runs ``INSTALL spatial`` at
start-up and aborts offline, so it gets a HOME whose DuckDB extension folder already holds the
spatial and avro extensions copied from their PyPI packages.

``python -m tests.servers.bigquery --install`` creates the virtualenv (the Makefile calls it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.servers import TOOLS, Server, free_port, wait_for

VENV = TOOLS / "bqemulator"
PROJECT = "test-proj"
# Versions verified together offline (see shared ENVIRONMENT.md); the DuckDB extension folder name
# below must match the duckdb version.
PACKAGES = (
    "bqemulator==1.4.0",
    "duckdb==1.5.5",
    "duckdb-extension-spatial==1.5.5",
    "duckdb-extension-avro==1.5.5",
    "numpy",
)
DUCKDB_VERSION = "v1.5.5"
EXTENSIONS = ("spatial", "avro")
# Start-up measured at 1.3–2.3 s on two cores; a loaded CI machine gets ample slack.
READY_TIMEOUT_S = 60.0
# SIGINT lets uvicorn and the gRPC server shut down cleanly; after this the process is killed.
STOP_TIMEOUT_S = 10.0


class _ServerDied(BaseException):
    """The emulator process exited while we waited for it (a BaseException so ``wait_for``,
    which retries on ``Exception``, lets it through)."""


def ensure_venv() -> Path:
    """Create ``.venv-tools/bqemulator`` with the emulator if it is missing; return its ``bin``."""
    binary = VENV / "bin" / "bqemulator"
    if binary.exists():
        return binary.parent
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", *PACKAGES], check=True
    )
    return binary.parent


def _prepare_home(home: Path) -> None:
    """Put the DuckDB extensions where the emulator's ``INSTALL`` finds them without a network."""
    target = home / ".duckdb" / "extensions" / DUCKDB_VERSION / "linux_amd64"
    target.mkdir(parents=True, exist_ok=True)
    site = next((VENV / "lib").glob("python3*/site-packages"))
    for name in EXTENSIONS:
        source = (
            site
            / f"duckdb_extension_{name}"
            / "extensions"
            / DUCKDB_VERSION
            / f"{name}.duckdb_extension"
        )
        shutil.copyfile(source, target / source.name)


def start(workdir: Path) -> Server:
    """Start bqemulator with its HOME under ``workdir``; ready when the datasets list answers."""
    bindir = ensure_venv()
    home = workdir / "home"
    _prepare_home(home)
    rest_port, grpc_port = free_port(), free_port()
    while grpc_port == rest_port:
        grpc_port = free_port()
    log = open(workdir / "bqemulator.log", "wb")  # noqa: SIM115 - closed in stop()
    process = subprocess.Popen(
        [
            str(bindir / "bqemulator"),
            "start",
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            str(rest_port),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(grpc_port),
            "--project",
            PROJECT,
            "--ephemeral",
            "--log-level",
            "warning",
        ],  # fmt: skip
        env={**os.environ, "HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    rest = f"http://127.0.0.1:{rest_port}"

    def ready() -> bool:
        if process.poll() is not None:  # escapes wait_for's retry loop: no point waiting
            raise _ServerDied(process.returncode)
        with urllib.request.urlopen(
            f"{rest}/bigquery/v2/projects/{PROJECT}/datasets", timeout=2
        ) as response:
            return response.status == 200

    def stop() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()

    try:
        wait_for(ready, what="bqemulator", timeout=READY_TIMEOUT_S)
    except _ServerDied as died:
        stop()
        tail = (workdir / "bqemulator.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"bqemulator exited with status {died.args[0]}:\n{tail}") from None
    except BaseException:
        stop()
        raise
    return Server(
        kind="bigquery",
        env={
            "FED_TEST_BIGQUERY_REST": rest,
            "FED_TEST_BIGQUERY_GRPC": f"127.0.0.1:{grpc_port}",
            "FED_TEST_BIGQUERY_PROJECT": PROJECT,
        },
        stop=stop,
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--install"]:
        print(f"bqemulator ready in {ensure_venv()}")
    else:
        print("usage: python -m tests.servers.bigquery --install", file=sys.stderr)
        sys.exit(2)
