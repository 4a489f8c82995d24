"""The Snowflake test server: the fakesnow emulator in server mode, run from its own virtualenv.

fakesnow pins a different sqlglot than fed-assets, so it lives in ``.venv-tools/fakesnow`` and
never in ``.venv``; ``ensure_venv()`` creates that virtualenv when it is missing (``python -m
tests.servers.snowflake --install`` does the same for the Makefile). The real Snowflake connector
talks to the emulator over HTTP, exactly as it talks to Snowflake.

All sessions share one in-memory emulator; tests isolate themselves by creating a database of
their own (the case fixtures use a fresh database name per test), which is cheaper than
``FAKESNOW_DB_PATH=:isolated:`` and lets a writer and the silo see the same tables.

Variables exported: ``FED_TEST_SNOWFLAKE_HOST``, ``FED_TEST_SNOWFLAKE_PORT``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.servers import TOOLS, Server, free_port, wait_for

VENV = TOOLS / "fakesnow"
FAKESNOW = VENV / "bin" / "fakesnow"

# fakesnow 0.12.1 is the version whose server mode the silo was verified against; connector 5.x
# breaks fakesnow's import, so it is held below 5 in the emulator's own virtualenv.
REQUIREMENTS = ("fakesnow[server]==0.12.1", "snowflake-connector-python<5")

# Written into the virtualenv after a successful install; a different pin list reinstalls.
_MARKER = VENV / ".fed-assets-requirements"

# Seconds to wait for the emulator: it answers in about 1 s; a cold machine may need several.
START_TIMEOUT_S = 60.0

# Runs fakesnow's command line with one fix: fakesnow 0.12.1 builds the connector's timestamp
# structs without a null mask, so a NULL TIMESTAMP arrives as 1970-01-01 (real Snowflake sends
# NULL). The fix re-applies the input's nulls; everything else is fakesnow as released.
LAUNCHER = """
import sys
import pyarrow as pa
import fakesnow.arrow
from fakesnow.cli import main

_to_struct = fakesnow.arrow.timestamp_to_sf_struct

def _keeping_nulls(ts):
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    out = _to_struct(ts)
    if ts.null_count == 0:
        return out
    return pa.StructArray.from_arrays(out.flatten(), fields=list(out.type), mask=ts.is_null())

fakesnow.arrow.timestamp_to_sf_struct = _keeping_nulls
sys.exit(main(sys.argv[1:]))
"""

# Seconds a SIGINT gets to stop uvicorn cleanly before the process is killed.
STOP_TIMEOUT_S = 10.0


def ensure_venv() -> Path:
    """Create ``.venv-tools/fakesnow`` with the pinned emulator unless it is there already.

    Returns:
        The path of the ``fakesnow`` executable.

    Raises:
        RuntimeError: the virtualenv could not be created or pip failed (its output is included).
    """
    wanted = "\n".join(REQUIREMENTS)
    if FAKESNOW.exists() and _MARKER.exists() and _MARKER.read_text() == wanted:
        return FAKESNOW
    TOOLS.mkdir(parents=True, exist_ok=True)
    # Two pytest processes may start at once; the lock makes the second wait for the first.
    with open(TOOLS / ".fakesnow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if FAKESNOW.exists() and _MARKER.exists() and _MARKER.read_text() == wanted:
            return FAKESNOW
        python = VENV / "bin" / "python"
        if not python.exists():
            _run([_base_python(), "-m", "venv", str(VENV)], "create the fakesnow virtualenv")
        _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *REQUIREMENTS,
            ],
            "install fakesnow into .venv-tools/fakesnow",
        )
        _MARKER.write_text(wanted)
    return FAKESNOW


def start(workdir: Path) -> Server:
    """Start the emulator on a free port of 127.0.0.1 with its log and temp files under ``workdir``."""
    python = ensure_venv().with_name("python")
    port = free_port()
    tmp = workdir / "tmp"  # fakesnow puts its stage "bucket" under TMPDIR
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "fakesnow.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
    proc = subprocess.Popen(
        [str(python), "-c", LAUNCHER, "-s", "--host", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env=_tool_env(TMPDIR=str(tmp)),
        start_new_session=True,
        # A background parent may ignore SIGINT, and children inherit that: restore the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    def exited_or_answers() -> bool:
        if proc.poll() is not None:
            return True
        request = urllib.request.Request(f"http://127.0.0.1:{port}/session", method="POST")
        # A 401 ("session token not found") is an answer too: the app is up.
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=2).close()
        return True

    try:
        wait_for(exited_or_answers, what=f"fakesnow on 127.0.0.1:{port}", timeout=START_TIMEOUT_S)
    except BaseException:
        stop()
        raise
    if proc.poll() is not None:
        stop()
        raise RuntimeError(f"fakesnow exited with {proc.returncode}: {_tail(log_path)}")
    return Server(
        kind="snowflake",
        env={"FED_TEST_SNOWFLAKE_HOST": "127.0.0.1", "FED_TEST_SNOWFLAKE_PORT": str(port)},
        stop=stop,
    )


def _tool_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would mix our packages into the tool's Python."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


def _base_python() -> str:
    """The interpreter to build the tool virtualenv from (outside any virtualenv if possible)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=_tool_env())
    if done.returncode != 0:
        raise RuntimeError(
            f"could not {what} (exit {done.returncode}): {(done.stdout + done.stderr)[-2000:]}"
        )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str]) -> int:
    """``--install``: create the emulator's virtualenv; ``--check``: start and stop it once."""
    if argv == ["--install"]:
        print(ensure_venv())
        return 0
    if argv == ["--check"]:
        import tempfile

        workdir = Path(tempfile.mkdtemp(prefix="fed-snowflake-"))
        server = start(workdir)
        print(server.env)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    print("usage: python -m tests.servers.snowflake --install | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
