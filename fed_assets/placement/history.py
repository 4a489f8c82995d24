"""The history of estimated and measured runs, kept in a JSON file, and calibration from it.

Each measured run appends one record; ``calibrated_utilisation`` turns a pool's records into the
share of peak FLOP/s its runs actually reach, so the next estimate starts from what was measured.
The file is rewritten atomically (temporary file, fsync, rename) under a lock, so it survives a
restart and a crash mid-write, and two processes appending at once lose nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from fed_assets.errors import CorruptDataError

# Runs a calibration looks back over: recent enough to follow a changed machine or library,
# enough that one noisy run moves the figure by a tenth at most.
CALIBRATION_WINDOW = 10
# A run shorter than this is dominated by start-up (first kernel launches, allocator warm-up)
# rather than by its FLOPs, and is left out of calibration.
MIN_CALIBRATION_S = 0.5


@dataclass(frozen=True)
class RunRecord:
    """One run: what was estimated and what was measured.

    Attributes:
        pool: pool name; kind: ``"training"`` or ``"inference"``; dtype: number format.
        flops: the estimated FLOPs of the run (the model's, not the machine's).
        peak_flops: the pool's peak FLOP/s at the dtype when the run was estimated.
        utilisation: the share of peak the estimate assumed.
        est_seconds, seconds: estimated and measured wall time.
        tokens: tokens processed; kwh: measured IT energy (``None`` where unmeasured);
        energy_method: how ``kwh`` was obtained (``"nvml"``, ``"rapl"``, ``"codecarbon"``, ...).
        label: what ran (asset, model size), for people reading the history.
        at: Unix time the run ended.
    """

    pool: str
    kind: str
    dtype: str
    flops: float
    peak_flops: float
    utilisation: float
    est_seconds: float
    seconds: float
    tokens: int = 0
    kwh: float | None = None
    energy_method: str = "none"
    label: str = ""
    at: float = 0.0

    @property
    def achieved(self) -> float:
        """Share of peak FLOP/s the run reached."""
        return self.flops / (self.peak_flops * self.seconds) if self.seconds > 0 else 0.0

    @property
    def error(self) -> float:
        """(estimated − measured) ÷ measured seconds: +0.25 is 25 % over."""
        return (self.est_seconds - self.seconds) / self.seconds if self.seconds > 0 else 0.0


def calibrated_utilisation(
    records: Sequence[RunRecord], pool: str, *, kind: str = "training", dtype: str | None = None
) -> float | None:
    """The share of peak FLOP/s ``pool``'s recent runs of ``kind`` reached: their FLOPs over
    peak × their seconds, summed over the last ``CALIBRATION_WINDOW`` runs (so long runs weigh
    more than short ones); ``None`` with no usable run."""
    usable = [
        r
        for r in records
        if r.pool == pool
        and r.kind == kind
        and (dtype is None or r.dtype == dtype)
        and r.seconds >= MIN_CALIBRATION_S
        and r.flops > 0
    ][-CALIBRATION_WINDOW:]
    if not usable:
        return None
    return min(1.0, sum(r.flops for r in usable) / sum(r.peak_flops * r.seconds for r in usable))


class History:
    """Run records in a JSON file (a list of objects), appended atomically."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def records(self) -> list[RunRecord]:
        """Every record, oldest first; an absent file is an empty history.

        Raises:
            CorruptDataError: the file is not a history this module wrote.
        """
        if not self.path.exists():
            return []
        try:
            rows = json.loads(self.path.read_text())
            return [RunRecord(**row) for row in rows]
        except (ValueError, TypeError) as err:
            raise CorruptDataError(
                f"placement history '{self.path}'",
                f"the file is not a list of run records ({type(err).__name__}: {err})",
                "move the file aside; a new history starts empty",
            ) from None

    def append(self, record: RunRecord) -> None:
        """Add ``record`` (stamped with the time if it has none) and rewrite the file."""
        if not record.at:
            record = RunRecord(**{**asdict(record), "at": time.time()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            rows = [asdict(r) for r in self.records()] + [asdict(record)]
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(rows, out, indent=1)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def utilisation(self, pool: str, *, kind: str = "training", dtype: str | None = None):
        """``calibrated_utilisation`` over this file's records."""
        return calibrated_utilisation(self.records(), pool, kind=kind, dtype=dtype)
