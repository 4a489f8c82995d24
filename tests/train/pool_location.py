"""The code location of the pool test: a per-silo model over two small DuckDB loan books.

``FED_POOL_ROOT`` names the folder holding ``a.duckdb`` and ``b.duckdb`` (table ``loans``), the
catalog snapshot and the results. ``python -m tests.train.pool_location PARTITION`` runs that
partition of ``pooled_model`` in the instance of ``$DAGSTER_HOME`` under the multiprocess
executor, as a run launched from the UI would.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg

from fed_assets.catalog import Catalog
from fed_assets.definitions import build_definitions
from fed_assets.train.config import TrainingConfig
from fed_assets.train.per_silo import per_silo_model
from resources.silos.duckdb import DuckDBSilo

SILOS = ("a", "b")
JOB = "train_pooled_model"
# Three optimiser steps of a one-layer model: a partition's step lasts seconds.
TINY = TrainingConfig(
    max_steps=3, batch_size=16, max_length=32, n_layer=1, n_embd=32, n_head=2, vocab_size=256
)


def definitions() -> dg.Definitions:
    root = Path(os.environ["FED_POOL_ROOT"])
    silos = {s: DuckDBSilo(name=s, path=str(root / f"{s}.duckdb"), region="eu") for s in SILOS}
    catalog = Catalog(silos, root / "catalog.json")
    model = per_silo_model(
        "pooled_model",
        datasets={s: "loans" for s in SILOS},
        task="sequence_classification",
        label="label",
        features=["grade", "income"],
        catalog=catalog,
        config=TINY,
    )
    train = dg.define_asset_job(JOB, selection=[model])
    return build_definitions(
        catalog, results_base_path=str(root / "results"), assets=[model], jobs=[train]
    )


def job() -> dg.JobDefinition:
    """The model's job (for ``dagster.reconstructable``: its steps run in their own processes)."""
    return definitions().resolve_job_def(JOB)


if __name__ == "__main__":
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(job),
            instance=instance,
            tags={"dagster/partition": sys.argv[1]},
        )
    sys.exit(0 if result.success else 1)
