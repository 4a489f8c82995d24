"""Checkpoints: a training process killed mid-run resumes where it stopped, with the same result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fed_assets.train.fine_tune import fine_tune
from tests.train.conftest import TINY, loans

# Long enough (~114 steps) that the child is still training when its first checkpoints appear.
CONFIG = TINY.replace(epochs=6, checkpoint_every=5)
CHILD = """
import sys
from fed_assets.train.fine_tune import fine_tune
from tests.train.test_checkpoints import CONFIG
from tests.train.conftest import loans
fine_tune(loans(), task="sequence_classification", label="label",
          config=CONFIG.replace(checkpoint_dir=sys.argv[1]))
print("finished")
"""


def test_killed_run_resumes_from_its_checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if len(list(folder.glob("checkpoint-*.pt"))) >= 1:
            break
        time.sleep(0.05)
    assert child.poll() is None, child.stdout.read().decode()[-2000:]
    child.send_signal(signal.SIGKILL)
    child.wait()
    saved = sorted(folder.glob("checkpoint-*.pt"))
    assert saved and not list(folder.glob(".*tmp"))  # a kill mid-write leaves no half file named

    resumed = fine_tune(
        loans(),
        task="sequence_classification",
        label="label",
        config=CONFIG.replace(checkpoint_dir=str(folder)),
    )
    assert resumed.training["resumed from step"] >= 5
    straight = fine_tune(loans(), task="sequence_classification", label="label", config=CONFIG)
    assert resumed.metrics == straight.metrics
    assert resumed.history == straight.history
