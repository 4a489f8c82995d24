"""``python -m tests.servers run -- <command>``: start every test server, run, stop them all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.servers import KINDS, start


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "run" or argv[1] != "--":
        print("usage: python -m tests.servers run -- <command> [args...]", file=sys.stderr)
        return 2
    command = argv[2:]
    workdir = Path(tempfile.mkdtemp(prefix="fed-test-servers-"))
    servers = []
    env = dict(os.environ)
    try:
        for kind in KINDS:
            t0 = time.monotonic()
            server = start(kind, workdir / kind)
            servers.append(server)
            env.update(server.env)
            env[f"FED_TEST_{kind.upper()}_READY"] = "1"
            print(f"[servers] {kind} up in {time.monotonic() - t0:.1f} s", flush=True)
        return subprocess.call(command, env=env)
    finally:
        for server in reversed(servers):
            try:
                server.stop()
            except Exception as err:  # keep stopping the others
                print(f"[servers] stopping {server.kind} failed: {err}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        print("[servers] stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
