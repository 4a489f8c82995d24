"""What the demo-model test files share: demo data, one `dagster dev`, runs launched as the UI does.

Each file (``test_models_central.py``, ``test_models_regional.py``) starts its own ``dagster dev``
(webserver and daemon) on the demo's code location over its own demo data, so the two pytest
workers of ``make test`` (``--dist loadfile``) train the demo's models side by side. Runs are
launched through GraphQL's ``launchRun``, the mutation the UI's Materialize button sends, all at
once; the tests read what a user reads on the asset pages: the metadata of each asset's latest
materialisation, fetched over GraphQL.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fed_assets.demo.generate import generate
from fed_assets.demo.models import REGIONAL_BOOKS
from tests.servers import ROOT
from tests.ui.dagster_dev import dagster_dev

# Models train in step processes that share two cores with other test sessions: a few minutes
# alone, more under load (the suite's 300 s per test would cut a module fixture short).
TIMEOUT_S = 1800
RUN_TIMEOUT_S = 1500
# Demo data size and seed: 0.5 is 1,000 customers and 300 loans per regional book, enough rows
# that every classifier's held-out ROC AUC clears the trivial baseline by MARGIN.
SCALE = 0.5
SEED = 11
DATASETS = ["credit_features", "aml_training_set"]
REGIONS = sorted(REGIONAL_BOOKS)
REGIONAL = [f"regional_credit_models[{s}]" for s in REGIONS]
# How far above the trivial baseline's ROC AUC (0.5) a classifier must be: a margin a user would
# call "learnt something", well clear of the noise of a few hundred held-out rows at chance.
MARGIN = 0.05


@contextlib.contextmanager
def demo_ui(
    tmp_path_factory, runs: Mapping[str, Sequence[str]], *, partitioned: str | None = None
) -> Iterator[dict[str, Any]]:
    """``dagster dev`` on fresh demo data with ``runs`` (name → assets) launched and finished.

    With ``partitioned``, that per-silo model is launched too, one run per regional partition
    (named by its silo), as the UI launches a partition. Yields ``dev``, ``data`` (the demo
    data folder), ``runs`` (name → run id) and ``shown``: every launched asset but the datasets
    (a partition as ``asset[silo]``) → its latest materialisation (``run`` and ``metadata``),
    and ``launched_by``: the same names → the run launched for it.
    """
    data = tmp_path_factory.mktemp("demo-models")
    home = tmp_path_factory.mktemp("dagster-home")
    generate(data, scale=SCALE, seed=SEED)
    env = {**os.environ, "FED_ASSETS_DATA": str(data), "PYTHONPATH": str(ROOT)}
    # Step processes train side by side on two cores: one BLAS thread each keeps them from
    # fighting over the same cores (tiny models gain nothing from intra-op threads).
    env["OMP_NUM_THREADS"] = "1"
    env.pop("FED_ASSETS_SILOS", None)
    env.pop("FED_ASSETS_CATALOG", None)
    with dagster_dev(["-w", "workspace.yaml"], env=env, home=home) as dev:
        began = time.monotonic()
        ids = {name: dev.launch(list(assets)) for name, assets in runs.items()}
        launched_by = {a: ids[n] for n, assets in runs.items() for a in assets if a not in DATASETS}
        for silo in REGIONS if partitioned else ():
            ids[silo] = dev.launch([partitioned], tags={"dagster/partition": silo})
            launched_by[f"{partitioned}[{silo}]"] = ids[silo]
        status = dev.wait(list(ids.values()), timeout=RUN_TIMEOUT_S)
        print(f"{', '.join(ids)} materialised through the UI in {time.monotonic() - began:.0f} s")
        failed = {name: dev.failure(r) for name, r in ids.items() if status[r] != "SUCCESS"}
        assert not failed, failed
        shown = {}
        for name in launched_by:
            asset, _, partition = name.removesuffix("]").partition("[")
            shown[name] = dev.materialization(asset, partition or None)
        yield {"dev": dev, "data": data, "runs": ids, "shown": shown, "launched_by": launched_by}


def assert_each_materialised_by_its_run(ui: dict[str, Any]) -> None:
    """Every asset shown was materialised by the run launched for it (not some other run)."""
    for name, run in ui["launched_by"].items():
        assert ui["shown"][name]["run"] == run, name


def assert_beats_trivial(ui: dict[str, Any], name: str) -> None:
    """Classifier ``name``'s held-out ROC AUC is MARGIN above the trivial baseline's."""
    meta = ui["shown"][name]["metadata"]
    assert meta["model/roc_auc"] > meta["trivial/roc_auc"] + MARGIN, (
        f"{name}: ROC AUC {meta['model/roc_auc']:.3f}, trivial {meta['trivial/roc_auc']:.3f}"
    )
    assert 0 < meta["logistic_regression/roc_auc"] <= 1  # the other baseline, beside it


def assert_placements_complete(ui: dict[str, Any]) -> None:
    """A model that shows any of its placement shows pool and reasons too."""
    for name, found in ui["shown"].items():
        meta = found["metadata"]
        if any(k.startswith("placement/") for k in meta):
            assert {"placement/pool", "placement/reasons"} <= set(meta), name


def asset_nodes(ui: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The code location's asset nodes (tags and dependencies) by asset key, as the UI reads them."""
    nodes = ui["dev"].graphql(
        "{ assetNodes { assetKey { path } tags { key value } dependencyKeys { path } } }"
    )["assetNodes"]
    return {"/".join(n["assetKey"]["path"]): n for n in nodes}


def assert_tagged_model(nodes: dict[str, dict[str, Any]], name: str) -> None:
    """Asset ``name`` carries the model role tag that sensors and placement select by."""
    assert {"key": "fed_assets/role", "value": "model"} in nodes[name]["tags"], name


def dependencies(nodes: dict[str, dict[str, Any]], name: str) -> set[str]:
    """The asset keys ``name`` depends on."""
    return {"/".join(d["path"]) for d in nodes[name]["dependencyKeys"]}
