"""The demo, end to end without a server, with its real models: a row changed in a silo table
leads, through a sensor tick, to retrain runs of exactly the models downstream of it, gated by
the dataset's quality checks; bad labels stop the training step."""

from __future__ import annotations

import sqlite3

import dagster as dg
import pytest

from fed_assets.demo.generate import DemoPaths, generate
from tests.sensors.world import evaluate

K = dg.AssetKey


@pytest.fixture
def demo(tmp_path, monkeypatch):
    data = tmp_path / "demo"
    generate(data, scale=0.25, seed=5)
    monkeypatch.setenv("FED_ASSETS_DATA", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # model checkpoints under the test
    monkeypatch.delenv("FED_ASSETS_SILOS", raising=False)
    monkeypatch.delenv("FED_ASSETS_CATALOG", raising=False)
    from fed_assets.demo.definitions import demo_definitions

    defs = demo_definitions()
    sensor = defs.get_repository_def().get_sensor_def("source_change_sensor")
    with dg.instance_for_test() as instance:
        yield DemoPaths(data), defs, sensor, instance


def requested(data) -> dict[str, list[str]]:
    """``model`` or ``model[partition]`` → the assets its run materialises."""
    out = {}
    for r in data.run_requests:
        model = r.run_key.split("@")[0]
        name = f"{model}[{r.partition_key}]" if r.partition_key else model
        out[name] = sorted(k.to_user_string() for k in r.asset_selection)
    return out


def run(defs, instance, request):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        asset_selection=request.asset_selection,
        partition_key=request.partition_key,
        tags=request.tags,
        raise_on_error=False,
    )


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:"
        f"{e.asset_check_evaluation_data.check_name}": e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def trained(instance, model: str) -> int:
    return len(instance.fetch_materializations(K(model), limit=10).records)


def test_a_changed_case_retrains_exactly_the_models_downstream_through_their_gates(demo):
    paths, defs, sensor, instance = demo
    repo = defs.get_repository_def()
    assert {s.name for s in repo.schedule_defs} == {"daily_dataset_refresh", "weekly_model_retrain"}
    cursor = evaluate(sensor, defs, instance).cursor
    with sqlite3.connect(paths.compliance) as con:
        con.execute("UPDATE aml_cases SET narrative = narrative || ' Reviewed.' WHERE case_id = 1")
    data = evaluate(sensor, defs, instance, cursor)
    assert requested(data) == {
        "narrative_lm": ["narrative_lm"],
        "sar_model": ["aml_training_set", "sar_model"],
    }
    sar = next(r for r in data.run_requests if r.run_key.startswith("sar_model@"))
    assert sar.tags["fed_assets/changed_sources"] == "compliance_store/aml_cases"

    result = run(defs, instance, sar)
    assert result.success
    gates = checks(result)
    assert gates["aml_training_set:quality_gate"].passed
    assert gates["aml_training_set:retrain_needed"].passed  # never trained: train
    assert trained(instance, "sar_model") == 1
    assert trained(instance, "credit_risk_model") == 0

    # Bad data in the silo: every SAR label cleared. The retrain stops at the gate.
    with sqlite3.connect(paths.compliance) as con:
        con.execute("UPDATE aml_cases SET sar_filed = 0")
    again = evaluate(sensor, defs, instance, data.cursor)
    sar = next(r for r in again.run_requests if r.run_key.startswith("sar_model@"))
    failed = run(defs, instance, sar)
    gate = checks(failed)["aml_training_set:quality_gate"]
    assert not gate.passed and "expect_column_mean_to_be_between(sar_filed)" in gate.description
    assert trained(instance, "sar_model") == 1


def test_a_changed_regional_loan_book_retrains_its_partition_and_the_federated_model(demo):
    paths, defs, sensor, instance = demo
    cursor = evaluate(sensor, defs, instance).cursor
    with sqlite3.connect(paths.regional("fr_loans")) as con:
        con.execute("UPDATE loan_book SET income = income + 1 WHERE rowid = 1")
    assert requested(evaluate(sensor, defs, instance, cursor)) == {
        "federated_credit_model": ["federated_credit_model"],
        "regional_credit_models[fr_loans]": ["regional_credit_models"],
    }


def test_the_demo_gates_pass_on_the_generated_data(demo):
    _, defs, _, instance = demo
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, asset_selection=[K("credit_features"), K("aml_training_set")]
    )
    assert result.success
    gates = checks(result)
    assert gates["credit_features:quality_gate"].passed, gates["credit_features:quality_gate"]
    assert gates["aml_training_set:quality_gate"].passed
