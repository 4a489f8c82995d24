"""A small world for sensor tests: a SQLite silo and a local Parquet lake, a federated dataset on
each, and model assets downstream of them.

The models here are stand-ins (a plain asset tagged ``fed_assets/role=model`` that records the
training data's profile as ``fine_tuned_model`` does): the sensors select models by that tag and
the graph, so what they are trained with does not matter to these tests.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from fed_assets.asset_graph import MODEL_ROLE, MODEL_ROLE_TAG
from fed_assets.catalog import Catalog
from fed_assets.definitions import build_definitions
from fed_assets.profile import PROFILE_METADATA_KEY, profile
from fed_assets.query.asset import federated_asset
from resources.silos.parquet import ParquetSilo
from resources.silos.sqlite import SQLiteSilo

CUSTOMERS = 40


@dataclass(frozen=True)
class World:
    root: Path
    catalog: Catalog

    @property
    def crm(self) -> Path:
        return self.root / "crm.sqlite"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    def insert_customer(self, customer_id: int, score: float = 0.5, label: int = 1) -> None:
        with sqlite3.connect(self.crm) as con:
            con.execute("INSERT INTO customers VALUES (?, ?, ?)", (customer_id, score, label))

    def add_events(self, name: str, ids: Sequence[int]) -> None:
        events = pa.table({"id": list(ids), "amount": [float(i) for i in ids]})
        pq.write_table(events, self.lake / "events" / name)


def make_world(root: Path) -> World:
    """Seed the two silos under ``root`` and return the world (catalog snapshot under root)."""
    root.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(root / "crm.sqlite") as con:
        con.execute("CREATE TABLE customers (id INTEGER, score REAL, label INTEGER)")
        con.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [(i, (i % 10) / 10, i % 2) for i in range(CUSTOMERS)],
        )
        con.execute("CREATE TABLE notes (id INTEGER, note TEXT)")
    (root / "lake" / "events").mkdir(parents=True)
    world = World(root, Catalog(silos(root), root / "catalog.json"))
    world.add_events("part-0.parquet", range(CUSTOMERS))
    return world


def silos(root: Path) -> dict:
    return {
        "crm": SQLiteSilo(name="crm", path=str(root / "crm.sqlite"), region="eu"),
        "lake": ParquetSilo(name="lake", root=str(root / "lake"), region="eu"),
    }


def stand_in_model(name: str, dataset: str, **kwargs) -> dg.AssetsDefinition:
    """A model asset stand-in: tagged as a model, records its training data's profile."""

    @dg.asset(
        name=name,
        ins={"data": dg.AssetIn(dataset)},
        tags={MODEL_ROLE_TAG: MODEL_ROLE},
        kinds={"pytorch"},
        **kwargs,
    )
    def _model(data: pa.Table) -> dg.Output:
        return dg.Output(
            pa.table({"trained_rows": [data.num_rows]}),
            metadata={PROFILE_METADATA_KEY: dg.MetadataValue.json(profile(data))},
        )

    return _model


def world_assets(world: World) -> list[dg.AssetsDefinition]:
    """Two federated datasets and three models: one per silo, and one on both."""
    crm_features = federated_asset(
        "crm_features", "SELECT id, score, label FROM crm.customers", catalog=world.catalog
    )
    lake_features = federated_asset(
        "lake_features", "SELECT id, amount FROM lake.events", catalog=world.catalog
    )

    @dg.asset(
        name="joined_features",
        ins={"crm": dg.AssetIn("crm_features"), "lake": dg.AssetIn("lake_features")},
    )
    def joined(crm: pa.Table, lake: pa.Table) -> pa.Table:
        return crm.join(lake, "id")

    return [
        crm_features,
        lake_features,
        joined,
        stand_in_model("crm_model", "crm_features"),
        stand_in_model("lake_model", "lake_features"),
        stand_in_model("joined_model", "joined_features"),
    ]


def world_definitions(
    world: World, *, sensors=(), schedules=(), assets=(), checks=()
) -> dg.Definitions:
    return build_definitions(
        world.catalog,
        results_base_path=str(world.root / "results"),
        assets=[*world_assets(world), *assets],
        asset_checks=list(checks),
        sensors=list(sensors),
        schedules=list(schedules),
    )


def evaluate(sensor, defs, instance, cursor=None, resources=None):
    """One tick as the daemon runs it; ``resources`` replaces the silos (e.g. one that is down)."""
    repo = defs.get_repository_def()
    if resources is None:
        every = repo.get_top_level_resources()
        resources = {k: every[k] for k in sensor.required_resource_keys}
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=repo, resources=resources
    ) as context:
        return sensor.evaluate_tick(context)


def models_requested(data) -> dict[str, list[str]]:
    return {
        r.run_key.split("@")[0]: sorted(k.to_user_string() for k in r.asset_selection)
        for r in data.run_requests
    }
