"""Measured beside estimated: time, tokens/s and energy of a run, with the method that measured it.

Energy comes from the best source the machine offers: NVML's energy counter on an NVIDIA GPU,
RAPL (``/sys/class/powercap``) on a CPU that exposes it, otherwise codecarbon's estimate (on a
VM without RAPL that is a TDP-based figure per CPU thread plus a fixed RAM figure), and failing
all of them the pool's rated watts × time. CO₂ and water always come from the pool's figures
(grid intensity, PUE, WUE), not from a tool's own country tables.
"""

from __future__ import annotations

import glob
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fed_assets.errors import ConfigurationError
from fed_assets.placement.estimate import Footprint, RunEstimate, footprint
from fed_assets.placement.history import History, RunRecord
from fed_assets.placement.pools import ComputePool

log = logging.getLogger(__name__)

# RAPL package domains (one per socket); their subdomains (core, uncore, dram) are inside them.
RAPL_GLOB = "/sys/class/powercap/intel-rapl:[0-9]*"
# codecarbon needs a country for its own emission figure, which is not used (CO₂ comes from the
# pool's grid intensity): any ISO code will do; Germany is the one verified offline here.
CODECARBON_COUNTRY = "DEU"
ENERGY_METHODS = ("auto", "nvml", "rapl", "codecarbon", "rated")


@dataclass(frozen=True)
class Actual:
    """What a run measured.

    Attributes:
        seconds: wall time; tokens: tokens processed (as the caller reported them).
        kwh: IT energy measured, ``None`` when only the pool's rating could be used.
        energy_method: ``"nvml"``, ``"rapl"``, ``"codecarbon"`` (an estimate) or ``"rated"``
            (pool watts × time).
        footprint: money, facility energy, CO₂ and water from the pool's figures.
        cpu_seconds: process CPU time ÷ ``threads`` (the run's time with its cores to itself).
    """

    seconds: float
    tokens: int
    kwh: float | None
    energy_method: str
    footprint: Footprint
    cpu_seconds: float | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Measurement:
    """Filled in while a ``measure`` block runs: set ``tokens`` inside it; ``actual`` is set
    when the block ends without an error. Set ``calibrates`` to ``False`` when the run did not
    do the work its estimate is of (it resumed from a checkpoint, say): it is then measured and
    shown, but kept out of the history that calibrates later estimates."""

    pool: ComputePool
    estimate: RunEstimate | None
    tokens: int = 0
    actual: Actual | None = None
    record: RunRecord | None = None
    notes: list[str] = field(default_factory=list)
    calibrates: bool = True


@contextmanager
def measure(
    pool: ComputePool,
    estimate: RunEstimate | None = None,
    *,
    history: History | str | Path | None = None,
    energy: str = "auto",
    label: str = "",
    dtype: str = "fp32",
    threads: int | None = None,
) -> Iterator[Measurement]:
    """Measure the run inside the ``with`` block on ``pool``; append it to ``history`` when it
    ends without an error (a failed run is not a measurement of the estimate).

    Args:
        estimate: the estimate made before the run (recorded beside the actuals).
        history: where run records are kept (a ``History`` or a path to its JSON file).
        energy: ``"auto"`` (NVML, then RAPL, then codecarbon, then rated), or one of them.
        label: what ran, for the history.
        dtype: the run's number format (for the record when there is no estimate).
        threads: compute threads the run uses, to turn its CPU time into ``cpu_seconds``
            (``None``: torch's thread count when torch is loaded, else 1).
    """
    if energy not in ENERGY_METHODS:
        raise ConfigurationError(
            "measure", f"energy method {energy!r} is unknown", f"use one of {ENERGY_METHODS}"
        )
    meter = _meter(energy, pool)
    measurement = Measurement(pool=pool, estimate=estimate)
    meter.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        yield measurement
    except BaseException:
        meter.stop()
        raise
    seconds = time.perf_counter() - started
    cpu_seconds = (time.process_time() - cpu_started) / (threads or _threads())
    kwh = meter.stop()
    method = meter.method if kwh is not None else "rated"
    measurement.actual = Actual(
        seconds=seconds,
        tokens=measurement.tokens,
        kwh=kwh,
        energy_method=method,
        footprint=footprint(seconds, pool, device_kwh=kwh),
        cpu_seconds=cpu_seconds,
    )
    if estimate is not None:
        measurement.record = RunRecord(
            pool=pool.name,
            kind=estimate.kind,
            dtype=dtype,
            flops=estimate.flops,
            peak_flops=estimate.peak_flops,
            utilisation=estimate.utilisation,
            est_seconds=estimate.seconds,
            seconds=seconds,
            tokens=measurement.tokens,
            kwh=kwh,
            energy_method=method,
            label=label,
            at=time.time(),
            steps=estimate.steps,
            step_overhead_s=estimate.step_overhead_s,
            cpu_seconds=cpu_seconds,
            d_model=estimate.d_model,
        )
        if history is not None and measurement.calibrates:
            store = history if isinstance(history, History) else History(history)
            store.append(measurement.record)


def _threads() -> int:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else 1


class _Meter:
    method = "rated"

    def start(self) -> None:
        pass

    def stop(self) -> float | None:
        return None


class _Nvml(_Meter):
    """NVML's total-energy counter (mJ since driver load), summed over every GPU."""

    method = "nvml"

    def __init__(self):
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        count = pynvml.nvmlDeviceGetCount()
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        self._read()  # refuse now if the counter is unsupported (pre-Volta GPUs)

    def _read(self) -> float:
        return sum(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles)

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> float | None:
        return (self._read() - self._start) / 1000 / 3.6e6


class _Rapl(_Meter):
    """RAPL package energy counters (µJ), with wrap-around."""

    method = "rapl"

    def __init__(self):
        self._domains = [Path(d) for d in glob.glob(RAPL_GLOB) if Path(d, "energy_uj").exists()]
        if not self._domains:
            raise OSError("no RAPL domain under /sys/class/powercap")
        self._read()  # refuse now if not readable (often root-only)

    def _read(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self._domains]

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> float | None:
        total = 0
        for domain, before, after in zip(self._domains, self._start, self._read(), strict=True):
            if after < before:
                after += int((domain / "max_energy_range_uj").read_text())
            total += after - before
        return total / 1e6 / 3.6e6


class _Codecarbon(_Meter):
    """codecarbon's offline tracker: its energy estimate (CPU by RAPL or TDP, RAM, GPU)."""

    method = "codecarbon"

    def __init__(self):
        from codecarbon import OfflineEmissionsTracker

        self._tracker = OfflineEmissionsTracker(
            country_iso_code=CODECARBON_COUNTRY, save_to_file=False, log_level="error"
        )

    def start(self) -> None:
        self._tracker.start()

    def stop(self) -> float | None:
        self._tracker.stop()
        data = self._tracker.final_emissions_data
        return float(data.energy_consumed) if data is not None else None


def _meter(energy: str, pool: ComputePool) -> _Meter:
    """The first meter of the requested kind(s) that works on this machine."""
    order = {
        "auto": (["nvml"] if pool.device == "cuda" else []) + ["rapl", "codecarbon"],
        "rated": [],
    }.get(energy, [energy])
    kinds = {"nvml": _Nvml, "rapl": _Rapl, "codecarbon": _Codecarbon}
    for kind in order:
        try:
            return kinds[kind]()
        except Exception as err:  # each source fails its own way (NVMLError, OSError, ImportError)
            if energy != "auto":
                raise ConfigurationError(
                    "measure",
                    f"energy method {kind!r} is not available here: {type(err).__name__}: {err}",
                    "use energy='auto', which falls back to what the machine offers",
                ) from None
            log.debug("energy meter %s unavailable: %s", kind, err)
    return _Meter()
