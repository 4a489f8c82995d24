"""The compute estate as one Dagster resource: the embedded engine, each silo's engine, the pools.

One configuration describes everywhere work can run and what moving data between regions costs:
``choose`` places training and inference on its pools, ``choose_engine_region`` places a
federated query's embedded engine, and ``priced_silos`` hands the federated cost model the
estate's link prices and throughputs. ``ComputeEstate.example()`` loads the documented example
(``resources/estates/example.yaml``, every figure with its source).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dagster import ConfigurableResource
from pydantic import Field, model_validator

from fed_assets.errors import ConfigurationError
from fed_assets.placement.errors import PoolConfigError
from fed_assets.placement.pools import ComputePool, Link, SiloEngine
from fed_assets.query.cost import DEFAULT_MB_PER_S, KIND_MB_PER_S
from fed_assets.silo import SiloResource

# The shipped example estate (GPU types and regions with sourced figures).
EXAMPLE_ESTATE = Path(__file__).with_name("estates") / "example.yaml"


class ComputeEstate(ConfigurableResource):
    """Where work can run: the embedded engine's region, silo engines, compute pools, links."""

    engine_region: str = Field(
        default="local",
        description="Region the embedded DuckDB engine runs in when nothing chooses one.",
    )
    engine_regions: list[str] = Field(
        default_factory=list,
        description="Regions the embedded engine may be started in for a federated query; "
        "empty: the pools' regions and engine_region.",
    )
    silo_engines: dict[str, SiloEngine] = Field(
        default_factory=dict,
        description="Per silo name: its own engine's region and measured scan MB/s, overriding "
        "the silo resource's figures.",
    )
    pools: list[ComputePool] = Field(
        default_factory=list, description="Compute pools training and inference can run on."
    )
    links: list[Link] = Field(
        default_factory=list,
        description="Price (and throughput) of moving data from one region to another; a "
        "route not listed uses the silo's own egress price.",
    )
    detect_local: bool = Field(
        default=True,
        description="Add this machine as pool 'local' (measured GEMM FLOP/s, price 0) in "
        "engine_region, unless a pool of that name is configured.",
    )
    history_path: str | None = Field(
        default=None,
        description="JSON file of measured runs; estimates calibrate their utilisation from it.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ComputeEstate:
        names = [p.name for p in self.pools]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise PoolConfigError(
                f"compute pools {duplicated}", "names must be unique", "rename one of each pair"
            )
        routes = [(link.source, link.destination) for link in self.links]
        twice = sorted({r for r in routes if routes.count(r) > 1})
        if twice:
            raise PoolConfigError(
                f"links {twice}", "a route is priced twice", "keep one entry per route"
            )
        return self

    # ----------------------------------------------------------------- building
    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> ComputeEstate:
        """The estate described by a YAML file (the same fields as this resource).

        Raises:
            ConfigurationError: the file is missing or not a mapping; PoolConfigError: a
                figure is missing or contradicts another.
        """
        path = Path(path)
        try:
            settings = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigurationError(
                f"compute estate '{path}'", f"the file cannot be read: {err}", "check the path"
            ) from None
        if not isinstance(settings, Mapping):
            raise ConfigurationError(
                f"compute estate '{path}'", "the file is not a YAML mapping", "see the example"
            )
        try:
            return cls(**{**settings, **overrides})
        except ConfigurationError:
            raise
        except Exception as err:  # pydantic: a missing or mistyped field
            first = str(err).splitlines()
            raise PoolConfigError(
                f"compute estate '{path}'",
                "a figure is missing or has the wrong type: " + " ".join(first[:3]),
                "give every pool name, device, memory_gb, peak_flops, usd_per_hour, watts, "
                "region and grid_gco2_per_kwh",
            ) from None

    @classmethod
    def example(cls, **overrides: Any) -> ComputeEstate:
        """The documented example estate (cloud GPU pools in eu, uk and us)."""
        return cls.from_yaml(EXAMPLE_ESTATE, **overrides)

    # ----------------------------------------------------------------- reading
    def all_pools(self) -> list[ComputePool]:
        """The configured pools, and this machine as ``local`` when ``detect_local``."""
        pools = list(self.pools)
        if self.detect_local and not any(p.name == "local" for p in pools):
            from fed_assets.placement.detect import local_pool

            pools.append(local_pool(self.engine_region))
        return pools

    def pool(self, name: str) -> ComputePool:
        """The pool called ``name``.

        Raises:
            ConfigurationError: no such pool (the message lists the others).
        """
        for pool in self.all_pools():
            if pool.name == name:
                return pool
        raise ConfigurationError(
            f"compute pool '{name}'",
            "the estate has no pool of that name",
            f"use one of {[p.name for p in self.all_pools()]}",
        )

    def site_pools(self, region: str) -> list[ComputePool]:
        """The pools training at a site in ``region`` can use (a per-silo partition, a federated
        site, the FedAvg aggregator): the configured pools, and with ``detect_local`` this
        machine standing in for the site's own machine, in ``region``.

        In the embedded default every silo is on this machine, so a per-silo or federated site's
        training runs here and is measured here; it is placed in the silo's region because that
        is where the silo's rows are (and may stay). Its history is this machine's (pool
        ``local``), so one calibration serves every site.
        """
        pools = list(self.pools)
        if self.detect_local and not any(p.name == "local" for p in pools):
            from fed_assets.placement.detect import local_pool

            here = local_pool(region)
            pools.append(
                here.model_copy(
                    update={"location": f"{here.location}, standing in for the site in {region}"}
                )
            )
        return pools

    def candidate_regions(self) -> list[str]:
        """Regions the embedded engine may run a federated query in."""
        if self.engine_regions:
            return list(self.engine_regions)
        return sorted({self.engine_region, *(p.region for p in self.pools)})

    def link(self, source: str, destination: str) -> Link | None:
        """The configured link from ``source`` to ``destination``, if any."""
        return next(
            (k for k in self.links if k.source == source and k.destination == destination), None
        )

    def usd_per_gb(self) -> dict[tuple[str, str], float]:
        """Link prices by (source, destination)."""
        return {(k.source, k.destination): k.usd_per_gb for k in self.links}

    def priced_silos(
        self, silos: Mapping[str, SiloResource], destination: str | None
    ) -> dict[str, SiloResource]:
        """``silos`` with the estate's figures for moving their data to ``destination``: each
        silo's engine region and scan MB/s from ``silo_engines``, its egress price from the
        link (silo region → destination), its throughput capped by the link's.

        The federated cost model (``fed_assets.query.cost``) reads these fields, so planning
        over the returned silos prices every route from this one configuration; silos and routes
        the estate does not describe keep their own figures.
        """
        out = {}
        for name, silo in silos.items():
            update: dict[str, Any] = {}
            engine = self.silo_engines.get(name)
            if engine is not None and engine.region:
                update["region"] = engine.region
            if engine is not None and engine.scan_mb_per_s:
                update["scan_mb_per_s"] = engine.scan_mb_per_s
            region = update.get("region", silo.region)
            link = self.link(region, destination) if destination else None
            if link is not None:
                update["egress_usd_per_gb"] = link.usd_per_gb
                if link.mb_per_s:
                    scan = (
                        update.get("scan_mb_per_s")
                        or silo.scan_mb_per_s
                        or KIND_MB_PER_S.get(silo.kind, DEFAULT_MB_PER_S)
                    )
                    update["scan_mb_per_s"] = min(scan, link.mb_per_s)
            out[name] = silo.model_copy(update=update) if update else silo
        return out
