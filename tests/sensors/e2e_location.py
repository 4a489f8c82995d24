"""The code location the UI end-to-end test serves with ``dagster dev``: a PostgreSQL silo and an
S3 Parquet lake (the test servers), a federated dataset on each with its quality gate, a model on
each, a per-silo partitioned model on both, and the source-change sensor running every second.

Settings come from the environment the test sets: ``FED_E2E_ROOT`` (catalog snapshot, results),
``FED_E2E_PG_SCHEMA``, ``FED_E2E_BUCKET`` and the test servers' ``FED_TEST_*`` variables.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pyarrow as pa

from fed_assets.asset_graph import MODEL_ROLE, MODEL_ROLE_TAG
from fed_assets.catalog import Catalog
from fed_assets.definitions import build_definitions
from fed_assets.quality import DatasetSuite, quality_check
from fed_assets.query.asset import federated_asset
from resources.silos.parquet import ParquetSilo
from resources.silos.postgres import PostgresSilo
from sensors.source_change import source_change_sensor
from tests.sensors.world import stand_in_model

PER_SILO = dg.StaticPartitionsDefinition(["pg", "lake"])


def _silos() -> dict:
    env = os.environ
    return {
        "pg": PostgresSilo(
            name="pg",
            region="eu",
            host=env["FED_TEST_POSTGRES_HOST"],
            port=int(env["FED_TEST_POSTGRES_PORT"]),
            user=env["FED_TEST_POSTGRES_USER"],
            password=env["FED_TEST_POSTGRES_PASSWORD"],
            database=env["FED_TEST_POSTGRES_DATABASE"],
            schema=env["FED_E2E_PG_SCHEMA"],
        ),
        "lake": ParquetSilo(
            name="lake",
            region="eu",
            root=f"s3://{env['FED_E2E_BUCKET']}/lake",
            s3_endpoint_url=env["FED_TEST_S3_ENDPOINT"],
            s3_access_key_id=env["FED_TEST_S3_ACCESS_KEY"],
            s3_secret_access_key=env["FED_TEST_S3_SECRET_KEY"],
            s3_region=env["FED_TEST_S3_REGION"],
        ),
    }


@dg.asset(
    partitions_def=PER_SILO,
    ins={"loans": dg.AssetIn("loan_features"), "events": dg.AssetIn("event_features")},
    tags={MODEL_ROLE_TAG: MODEL_ROLE},
    kinds={"pytorch"},
)
def per_silo_model(context, loans: pa.Table, events: pa.Table) -> pa.Table:
    """A stand-in per-silo model: one partition per silo, each trained on its silo's dataset."""
    data = {"pg": loans, "lake": events}[context.partition_key]
    return pa.table({"silo": [context.partition_key], "trained_rows": [data.num_rows]})


def e2e_definitions() -> dg.Definitions:
    root = Path(os.environ["FED_E2E_ROOT"])
    catalog = Catalog(_silos(), root / "catalog.json")
    loans = federated_asset(
        "loan_features", "SELECT id, amount, label FROM pg.loans", catalog=catalog
    )
    events = federated_asset(
        "event_features", "SELECT id, amount FROM lake.events", catalog=catalog
    )
    suite = DatasetSuite(name="loans", not_null=("id",), unique=("id",), label="label")
    built = build_definitions(
        catalog,
        results_base_path=str(root / "results"),
        assets=[
            loans,
            events,
            stand_in_model("loan_model", "loan_features"),
            stand_in_model("event_model", "event_features"),
            per_silo_model,
        ],
        asset_checks=[quality_check(loans, suite)],
        sensors=[
            source_change_sensor(
                catalog,
                minimum_interval_seconds=1,
                default_status=dg.DefaultSensorStatus.RUNNING,
                tags=lambda key: {"fed_assets/pool": f"cpu-for-{key.path[-1]}"},
            )
        ],
    )
    # Steps in the run's own process: a subprocess per step costs seconds on a busy machine.
    return dg.Definitions.merge(built, dg.Definitions(executor=dg.in_process_executor))


defs = e2e_definitions()
