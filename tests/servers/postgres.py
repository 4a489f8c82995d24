"""A throwaway PostgreSQL 15 server with password authentication, for the silo tests."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.servers import Server, free_port

PGBIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"
DATABASE = "silo"


def start(workdir: Path) -> Server:
    """Start PostgreSQL 15 on a free port of 127.0.0.1 with database ``silo``.

    The data folder lives in a fresh ``tempfile.mkdtemp()`` owned by the ``postgres`` user
    (``workdir`` may sit under a 0700 tree that user cannot reach); ``workdir`` only keeps a
    pointer to it. Clients authenticate with scram-sha-256 as ``postgres`` and a random password.
    """
    if not (PGBIN / "initdb").exists():
        raise RuntimeError(
            f"PostgreSQL 15 is not installed ({PGBIN} is missing): "
            "apt-get install -y --no-install-recommends postgresql-15"
        )
    folder = Path(tempfile.mkdtemp(prefix="fed-pg-"))
    password = secrets.token_urlsafe(16)
    port = free_port()
    try:
        pwfile = folder / "pwfile"
        pwfile.write_text(password + "\n")
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
        pwfile.chmod(0o600)
        _as_postgres(
            "initdb", "-D", str(folder / "data"), "-U", USER, "-A", "scram-sha-256",
            f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        _as_postgres(
            "pg_ctl", "-D", str(folder / "data"), "-l", str(folder / "server.log"),
            "-w", "-t", "30", "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off",
            "start",
        )  # fmt: skip
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise

    def stop() -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PGBIN / "pg_ctl"), "-D",
             str(folder / "data"), "-m", "immediate", "-w", "stop"],
            capture_output=True, check=False,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)

    try:
        subprocess.run(
            [str(PGBIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE],
            env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except subprocess.CalledProcessError as err:
        stop()
        raise RuntimeError(f"createdb failed: {err.stderr.strip()}") from None
    (workdir / "postgres.datadir").write_text(str(folder))
    env = {
        "FED_TEST_POSTGRES_HOST": "127.0.0.1",
        "FED_TEST_POSTGRES_PORT": str(port),
        "FED_TEST_POSTGRES_USER": USER,
        "FED_TEST_POSTGRES_PASSWORD": password,
        "FED_TEST_POSTGRES_DATABASE": DATABASE,
    }
    return Server(kind="postgres", env=env, stop=stop)


def _as_postgres(tool: str, *args: str) -> None:
    """Run a PostgreSQL tool as the ``postgres`` user; raise with its output on failure."""
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PGBIN / tool), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
