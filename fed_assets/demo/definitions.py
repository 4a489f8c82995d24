"""The demo code location: four finance silos on local disk, or the same names from a YAML file.

``FED_ASSETS_DATA`` sets the data folder (default ``./data/demo``); ``FED_ASSETS_SILOS`` names a
YAML file (see ``fed_assets.config``) that points the same silo names at PostgreSQL, S3,
Snowflake or BigQuery instead — the asset definitions do not change; silos the file does not
name stay on local disk. ``FED_ASSETS_ESTATE`` names
a compute-estate YAML (default: the shipped example, ``resources/estates/example.yaml``); it
places the federated assets' engines and is the ``compute`` resource.
"""

from __future__ import annotations

import os

import dagster as dg

from fed_assets.catalog import Catalog
from fed_assets.config import silos_from_yaml
from fed_assets.definitions import build_definitions
from fed_assets.demo.assets import DEMO_ASSETS
from fed_assets.demo.federated import federated_demo_assets
from fed_assets.demo.gates import demo_gates
from fed_assets.demo.generate import DemoPaths, default_data_dir
from fed_assets.demo.models import demo_models
from fed_assets.demo.silos import embedded_silos
from resources.compute import EXAMPLE_ESTATE, ComputeEstate
from sensors.schedules import dataset_refresh_schedule, model_retrain_schedule
from sensors.source_change import source_change_sensor


def demo_definitions():
    paths = DemoPaths(default_data_dir())
    config = os.environ.get("FED_ASSETS_SILOS")
    # A YAML file re-points the silos it names; the ones it does not name stay on local disk.
    silos = {**embedded_silos(paths), **(silos_from_yaml(config) if config else {})}
    catalog = Catalog(silos, os.environ.get("FED_ASSETS_CATALOG", paths.catalog))
    estate = ComputeEstate.from_yaml(
        os.environ.get("FED_ASSETS_ESTATE", EXAMPLE_ESTATE),
        detect_local=True,
        history_path=str(paths.root / "placement_history.json"),
    )
    datasets = federated_demo_assets(catalog, estate)
    models = demo_models(catalog, {a.key.to_user_string(): a for a in datasets})
    defs = build_definitions(
        catalog,
        results_base_path=str(paths.results),
        assets=[*DEMO_ASSETS, *datasets, *models],
        asset_checks=demo_gates(),
        # A changed silo table retrains the models downstream of it, gated by the checks above.
        sensors=[source_change_sensor(catalog, default_status=dg.DefaultSensorStatus.RUNNING)],
        schedules=[dataset_refresh_schedule(), model_retrain_schedule()],
    )
    return dg.Definitions.merge(defs, dg.Definitions(resources={"compute": estate}))


defs = demo_definitions()
