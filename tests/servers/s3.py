"""An S3 test server: moto in server mode, as its own process, on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.servers import Server, free_port, wait_for

# moto accepts any key pair unless IAM auth is switched on; these only have to be non-empty.
ACCESS_KEY = "fedtest"
SECRET_KEY = "fedtest-secret"
REGION = "us-east-1"

# Seconds moto gets to stop after SIGTERM before it is killed.
_STOP_TIMEOUT = 10


def start(workdir: Path, *, extra_env: dict[str, str] | None = None) -> Server:
    """Start ``moto_server`` from this interpreter's environment, logging under ``workdir``.

    Args:
        workdir: folder for the server's log.
        extra_env: variables for the moto process only, e.g. ``INITIAL_NO_AUTH_ACTION_COUNT``
            to make it check credentials.
    """
    binary = Path(sys.prefix) / "bin" / "moto_server"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: pip install 'moto[s3,server]' into {sys.prefix}")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - closed in stop()
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}; see {workdir}/moto.log")
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as resp:
            return resp.status == 200

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()

    try:
        wait_for(answers, what=f"moto S3 server on {endpoint}", timeout=30)
    except Exception:
        stop()
        raise
    return Server(
        kind="s3",
        env={
            "FED_TEST_S3_ENDPOINT": endpoint,
            "FED_TEST_S3_ACCESS_KEY": ACCESS_KEY,
            "FED_TEST_S3_SECRET_KEY": SECRET_KEY,
            "FED_TEST_S3_REGION": REGION,
        },
        stop=stop,
    )
