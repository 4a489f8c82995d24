"""fine_tuned_model as a Dagster asset: read in place, metadata, model IO manager, residency."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fed_assets.definitions import build_definitions
from fed_assets.errors import PolicyViolation
from fed_assets.profile import PROFILE_METADATA_KEY
from fed_assets.train.asset import fine_tuned_model
from io_managers.model import ModelIOManager
from tests.train.conftest import TINY

FEATURES = ["grade", "income"]


def run(defs, keys):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(asset_selection=keys, instance=dg.DagsterInstance.ephemeral())


def test_model_asset_reads_only_its_columns_and_records_metrics(banks, tmp_path):
    model = fine_tuned_model(
        "de_credit",
        dataset="de_bank.loans",
        task="sequence_classification",
        label="label",
        features=FEATURES,
        catalog=banks,
        config=TINY,
        tags={"team": "risk"},
    )

    @dg.asset(ins={"credit": dg.AssetIn(key="de_credit")})
    def scored(credit):
        """Loads the model by asset key (model IO manager) and writes scores (results store)."""
        assert credit.classes == (False, True)
        return pa.table({"p_default": credit.predict_proba(dg_table())[:, 1]})

    defs = build_definitions(banks, results_base_path=str(tmp_path), assets=[model, scored])
    spec = next(iter(model.specs))
    assert spec.tags["fed_assets/role"] == "model" and spec.tags["team"] == "risk"
    assert {"pytorch", "duckdb"} <= set(spec.kinds)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("de_credit")).parent_keys == {dg.AssetKey(["de_bank", "loans"])}

    result = run(defs, [dg.AssetKey("de_credit"), dg.AssetKey("scored")])
    assert result.success
    events = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    meta = {k: v.value for k, v in events["de_credit"].materialization.metadata.items()}
    assert meta["model/roc_auc"] > meta["trivial/roc_auc"]
    assert "logistic_regression/roc_auc" in meta
    assert {r.data["model"] for r in meta["metrics"].records} == {
        "model",
        "trivial",
        "logistic_regression",
    }
    assert meta["rows trained"] + meta["rows held out"] == 240
    assert meta["parameters trainable"] < meta["parameters total"]
    assert meta["training curve"].startswith("![training curve](data:image/png;base64,")
    assert set(meta[PROFILE_METADATA_KEY]["columns"]) == {"label", *FEATURES}
    assert pq.read_table(tmp_path / "scored.parquet").num_rows == 10
    # what the read-in-place IO manager sent the silo shows on the asset that read it
    (materialization,) = result.asset_materializations_for_node("de_credit")
    (pushed,) = [v.value for k, v in materialization.metadata.items() if k.startswith("sql read/")]
    assert (
        "grade" in pushed
        and "income" in pushed
        and "region" not in pushed
        and "loan_id" not in pushed
    )
    store = ModelIOManager(base_path=str(tmp_path / "models"))
    stored = store.load_model("de_credit")
    card = stored.lineage
    (source,) = card["sources"]
    assert (
        source["silo"] == "de_bank"
        and source["version"] == banks.silos["de_bank"].version("loans").fingerprint
    )
    assert card["columns"] == ["label", *FEATURES]
    version = store.current_version(dg.AssetKey("de_credit"))
    readme = (tmp_path / "models" / "de_credit" / "versions" / version / "README.md").read_text()
    assert "`de_bank.loans` at version" in readme


def dg_table():
    from tests.train.conftest import loans

    return loans(10, seed=9)


def test_a_model_placed_where_its_data_may_not_go_is_refused_at_load(banks):
    with pytest.raises(PolicyViolation, match="allowed_regions"):
        fine_tuned_model(
            "us_credit",
            dataset="de_bank.loans",
            task="sequence_classification",
            label="label",
            features=FEATURES,
            catalog=banks,
            train_region="us",
        )
    with pytest.raises(PolicyViolation, match="export=none"):
        fine_tuned_model(
            "fr_central",
            dataset="fr_bank.loans",
            task="sequence_classification",
            label="label",
            features=FEATURES,
            catalog=banks,
            train_region="eu",
        )
    # Beside the data, an export: none silo trains fine.
    fine_tuned_model(
        "fr_local",
        dataset="fr_bank.loans",
        task="sequence_classification",
        label="label",
        features=FEATURES,
        catalog=banks,
    )
