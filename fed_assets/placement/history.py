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
# Runs needed before a per-step overhead is fitted beside the utilisation (two unknowns, and
# one run to spare against noise).
MIN_FIT_RUNS = 3
# Half-widths tried when fitting how the share of peak grows with the model's width
# (utilisation = u · d ÷ (d + d½)): 0 (no growth) and 8 … 8192 in steps of 2^(1/16) (4 %): 161
# small least-squares fits, microseconds each, and the best within 2 % of the continuous optimum.
HALF_WIDTHS = (0.0, *(8 * 2 ** (k / 16) for k in range(161)))
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
        steps: optimiser steps (batches) of the run; step_overhead_s: the per-step seconds the
            estimate assumed.
        cpu_seconds: the process's CPU time ÷ its compute threads (what the run would take
            with its cores to itself; on a shared machine wall time also measures the
            neighbours).
        d_model: the model's width (0 where unknown).
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
    steps: int = 0
    step_overhead_s: float = 0.0
    cpu_seconds: float | None = None
    d_model: int = 0

    def measured(self, clock: str = "wall") -> float:
        """Measured seconds by ``clock``: ``"wall"``, or ``"cpu"`` (wall where not recorded)."""
        return self.cpu_seconds if clock == "cpu" and self.cpu_seconds else self.seconds

    @property
    def achieved(self) -> float:
        """Share of peak FLOP/s the run reached."""
        return self.flops / (self.peak_flops * self.seconds) if self.seconds > 0 else 0.0

    @property
    def error(self) -> float:
        """(estimated − measured) ÷ measured seconds: +0.25 is 25 % over."""
        return (self.est_seconds - self.seconds) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Calibration:
    """A pool's figures fitted from its measured runs: seconds = FLOPs ÷ (peak × utilisation
    at the model's width) + steps × step_overhead_s.

    Attributes:
        utilisation: share of peak FLOP/s the FLOPs-bound part reaches (for a wide model,
            when ``half_width`` is set).
        step_overhead_s: fixed seconds per step (0 when the runs cannot separate it).
        runs: how many runs it was fitted on.
        half_width: the width d½ at which a model reaches half of ``utilisation``: a narrow
            model's matrix products are too small to keep the cores' vector units busy, so its
            share of peak grows with its width d as d ÷ (d + d½); 0 when the runs do not show it
            (one width, or widths unknown).
    """

    utilisation: float
    step_overhead_s: float
    runs: int
    half_width: float = 0.0

    def utilisation_at(self, d_model: int) -> float:
        """The share of peak a model of width ``d_model`` reaches (0: width unknown, the
        wide-model figure)."""
        if not self.half_width or not d_model:
            return self.utilisation
        return self.utilisation * d_model / (d_model + self.half_width)


def calibrate(
    records: Sequence[RunRecord],
    pool: str,
    *,
    kind: str = "training",
    dtype: str | None = None,
    clock: str = "wall",
) -> Calibration | None:
    """Fit ``pool``'s utilisation and per-step overhead to its last ``CALIBRATION_WINDOW`` runs
    of ``kind``, minimising the squared relative error of the time (a ±25 % goal is relative).

    With fewer than ``MIN_FIT_RUNS`` runs, or runs whose FLOPs per step are all alike (then the
    two figures cannot be told apart), or a fit that would make either negative, only the
    utilisation is fitted (``calibrated_utilisation``) and the overhead is 0. Pure: numbers in,
    numbers out.
    """
    usable = _usable(records, pool, kind, dtype)
    if not usable:
        return None
    ratio = Calibration(_ratio(usable, clock), 0.0, len(usable))
    steps = [r for r in usable if r.steps > 0]
    per_step = {round(r.flops / r.steps, -3) for r in steps}
    if len(steps) < MIN_FIT_RUNS or len(per_step) < 2:
        return ratio
    widths = {r.d_model for r in steps}
    # the width's effect is a third unknown: fitted only over several known widths, with a run
    # to spare beyond the three figures
    halves = HALF_WIDTHS if 0 not in widths and len(widths) > 2 and len(steps) > 3 else (0.0,)
    best = None
    for half in halves:
        fit = _fit(steps, clock, half)
        if fit is not None and (best is None or fit[0] < best[0]):
            best = fit
    if best is None:
        return ratio
    _, a, b, half = best
    return Calibration(1.0 / a, b, len(steps), half)


def _fit(records: Sequence[RunRecord], clock: str, half: float):
    """Weighted least squares of t = a·x + b·s, x = FLOPs ÷ peak × (d + half) ÷ d, s = steps,
    weights 1/t² (relative residuals): (squared error, a, b, half), or ``None`` when the runs
    cannot separate a and b or either comes out negative."""
    sxx = sxs = sss = sxt = sst = stt = 0.0
    for r in records:
        t = r.measured(clock)
        w = 1.0 / (t * t)
        x = r.flops / r.peak_flops * ((r.d_model + half) / r.d_model if half else 1.0)
        n = float(r.steps)
        sxx, sxs, sss = sxx + w * x * x, sxs + w * x * n, sss + w * n * n
        sxt, sst, stt = sxt + w * x * t, sst + w * n * t, stt + w * t * t
    determinant = sxx * sss - sxs * sxs
    if determinant <= 0:
        return None
    a = (sxt * sss - sst * sxs) / determinant
    b = (sst * sxx - sxt * sxs) / determinant
    if a <= 0 or b < 0:
        return None
    error = stt - 2 * (a * sxt + b * sst) + a * a * sxx + 2 * a * b * sxs + b * b * sss
    return error, a, b, half


def calibrated_utilisation(
    records: Sequence[RunRecord], pool: str, *, kind: str = "training", dtype: str | None = None
) -> float | None:
    """The share of peak FLOP/s ``pool``'s recent runs of ``kind`` reached: their FLOPs over
    peak × their seconds, summed over the last ``CALIBRATION_WINDOW`` runs (so long runs weigh
    more than short ones); ``None`` with no usable run."""
    usable = _usable(records, pool, kind, dtype)
    return _ratio(usable, "wall") if usable else None


def _usable(records, pool, kind, dtype) -> list[RunRecord]:
    return [
        r
        for r in records
        if r.pool == pool
        and r.kind == kind
        and (dtype is None or r.dtype == dtype)
        and r.seconds >= MIN_CALIBRATION_S
        and r.flops > 0
    ][-CALIBRATION_WINDOW:]


def _ratio(usable: Sequence[RunRecord], clock: str) -> float:
    flops = sum(r.flops for r in usable)
    # not capped at 1: against a peak measured on a busy machine a run can reach more
    return flops / sum(r.peak_flops * r.measured(clock) for r in usable)


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

    def calibration(self, pool: str, **kwargs) -> Calibration | None:
        """``calibrate`` over this file's records."""
        return calibrate(self.records(), pool, **kwargs)
