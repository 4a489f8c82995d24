"""The code location the UI end-to-end test serves with ``dagster dev``: a PostgreSQL silo and an
S3 Parquet lake (the test servers), a federated dataset on each (the loans' with its quality
gate), a fine-tuned model on each, a per-silo model partitioned over both silos, and the
source-change sensor running every second. The models are the real ``fine_tuned_model`` and
``per_silo_model`` assets, with the smallest configuration that trains.

Settings come from the environment the test sets: ``FED_E2E_ROOT`` (catalog snapshot, results),
``FED_E2E_PG_SCHEMA``, ``FED_E2E_BUCKET`` and the test servers' ``FED_TEST_*`` variables.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from fed_assets.catalog import Catalog
from fed_assets.definitions import build_definitions
from fed_assets.quality import DatasetSuite, quality_check
from fed_assets.query.asset import federated_asset
from fed_assets.train.asset import fine_tuned_model
from fed_assets.train.config import TrainingConfig
from fed_assets.train.per_silo import per_silo_model
from resources.silos.parquet import ParquetSilo
from resources.silos.postgres import PostgresSilo
from sensors.source_change import source_change_sensor

# One layer of width 32: trains on the test's 60 rows in a second or two.
TINY = TrainingConfig(
    epochs=1, batch_size=16, max_length=32, n_layer=1, n_embd=32, n_head=2, vocab_size=256
)


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


def e2e_definitions() -> dg.Definitions:
    root = Path(os.environ["FED_E2E_ROOT"])
    catalog = Catalog(_silos(), root / "catalog.json")
    loans = federated_asset(
        "loan_features", "SELECT id, amount, label FROM pg.loans", catalog=catalog
    )
    events = federated_asset(
        "event_features", "SELECT id, amount, label FROM lake.events", catalog=catalog
    )
    suite = DatasetSuite(name="loans", not_null=("id",), unique=("id",), label="label")
    built = build_definitions(
        catalog,
        results_base_path=str(root / "results"),
        assets=[
            loans,
            events,
            *(
                fine_tuned_model(
                    name,
                    dataset=dataset,
                    task="sequence_classification",
                    label="label",
                    features=["amount"],
                    catalog=catalog,
                    config=TINY,
                )
                for name, dataset in (("loan_model", loans), ("event_model", events))
            ),
            per_silo_model(
                "per_silo_model",
                datasets={"pg": "loans", "lake": "events"},
                task="sequence_classification",
                label="label",
                features=["amount"],
                catalog=catalog,
                config=TINY,
            ),
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
