"""Quality gates on a real dataset (a federated query over a SQLite silo) in real Dagster runs:
bad data fails the great-expectations suite and the model step does not run; the drift gate
retrains when the data moved and skips when it did not, and says which."""

from __future__ import annotations

import sqlite3

import dagster as dg
import pytest

from fed_assets.quality import DatasetSuite, drift_check, quality_check
from tests.sensors.world import make_world, world_definitions

K = dg.AssetKey
SUITE = DatasetSuite(
    name="crm_features",
    min_rows=10,
    not_null=("id", "score"),
    ranges={"score": (0.0, 1.0)},
    unique=("id",),
    label="label",
    label_share=(0.2, 0.8),
)


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "world")


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def gated(world):
    checks = [quality_check("crm_features", SUITE), drift_check("crm_features")]
    return world_definitions(world, assets=[], checks=checks)


def train(defs, instance):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        asset_selection=[K("crm_features"), K("crm_model")],
        raise_on_error=False,
    )


def check_result(result, name):
    (evaluation,) = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == name
    ]
    return evaluation


def trained_runs(instance) -> int:
    return len(instance.fetch_materializations(K("crm_model"), limit=100).records)


def test_good_data_passes_and_the_model_trains(world, instance):
    result = train(gated(world), instance)
    assert result.success
    gate = check_result(result, "quality_gate")
    assert gate.passed
    assert gate.metadata["failed expectations"].value == 0
    assert gate.metadata["expectations"].value == 7
    drift = check_result(result, "retrain_needed")
    assert drift.passed and "no training-data profile recorded yet" in drift.description
    assert trained_runs(instance) == 1


def test_bad_data_fails_the_suite_and_the_model_does_not_train(world, instance):
    with sqlite3.connect(world.crm) as con:  # a duplicate key, a score out of range, a null
        con.execute("INSERT INTO customers VALUES (3, 7.5, 1), (99, NULL, 0)")
    result = train(gated(world), instance)
    gate = check_result(result, "quality_gate")
    assert not gate.passed
    failed = {(f["expectation"], f["column"]): f for f in gate.metadata["failed"].value}
    assert failed[("expect_column_values_to_be_unique", "id")]["unexpected_count"] == 2
    assert failed[("expect_column_values_to_be_between", "score")]["unexpected_count"] == 1
    assert failed[("expect_column_values_to_not_be_null", "score")]["unexpected_count"] == 1
    assert gate.metadata["failing values"].value == 4
    assert "expect_column_values_to_be_unique(id): 2 unexpected" in gate.description
    assert trained_runs(instance) == 0
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert "crm_model" in skipped or not any(
        e.step_key == "crm_model" for e in result.all_events if e.is_step_start
    )


def test_unbalanced_labels_fail_the_suite(world, instance):
    with sqlite3.connect(world.crm) as con:
        con.execute("UPDATE customers SET label = 0")
    result = train(gated(world), instance)
    gate = check_result(result, "quality_gate")
    assert not gate.passed
    assert "expect_column_mean_to_be_between(label): observed 0.0" in gate.description
    assert trained_runs(instance) == 0


def test_a_retyped_column_fails_the_suite_naming_it(world, instance):
    with sqlite3.connect(world.crm) as con:
        con.executescript(
            "CREATE TABLE c2 (id INTEGER, score TEXT, label INTEGER);"
            "INSERT INTO c2 SELECT id, 'score ' || score, label FROM customers;"
            "DROP TABLE customers; ALTER TABLE c2 RENAME TO customers;"
        )
    result = train(gated(world), instance)
    gate = check_result(result, "quality_gate")
    assert not gate.passed and "(score)" in gate.description
    assert trained_runs(instance) == 0


def test_drift_gate_skips_unmoved_data_and_retrains_moved_data(world, instance):
    defs = gated(world)
    assert train(defs, instance).success
    same = train(defs, instance)
    assert not same.success  # Dagster ends a run whose blocking check failed as failed
    drift = check_result(same, "retrain_needed")
    assert not drift.passed
    assert drift.description.startswith("data did not move since training, retraining skipped")
    assert drift.metadata["decision"].value == "skip retraining"
    assert trained_runs(instance) == 1

    with sqlite3.connect(world.crm) as con:  # scores shift upwards: the mean moves
        con.execute("UPDATE customers SET score = min(score + 0.3, 1.0)")
    moved = train(defs, instance)
    drift = check_result(moved, "retrain_needed")
    assert drift.passed and "column 'score' drifted" in drift.description
    assert drift.metadata["decision"].value == "retrain"
    assert moved.success and trained_runs(instance) == 2
