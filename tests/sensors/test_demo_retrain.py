"""The demo, end to end without a server: a row changed in the compliance store leads, through a
sensor tick, to a retrain run of exactly the model downstream of it, gated by its checks.

The demo has no model assets of its own yet (``fine_tuned_model`` is being added); two stand-in
models tagged as models are added beside the demo's definitions, as a user's would be: the
sensor and the gates find them through the asset graph, unchanged."""

from __future__ import annotations

import sqlite3

import dagster as dg
import pytest

from fed_assets.demo.generate import DemoPaths, generate
from tests.sensors.world import evaluate, models_requested, stand_in_model

K = dg.AssetKey


@pytest.fixture
def demo(tmp_path, monkeypatch):
    data = tmp_path / "demo"
    generate(data, scale=0.25, seed=5)
    monkeypatch.setenv("FED_ASSETS_DATA", str(data))
    monkeypatch.delenv("FED_ASSETS_SILOS", raising=False)
    monkeypatch.delenv("FED_ASSETS_CATALOG", raising=False)
    from fed_assets.demo.definitions import demo_definitions

    models = [
        stand_in_model("aml_model", "aml_training_set"),
        stand_in_model("credit_model", "credit_features"),
    ]
    defs = dg.Definitions.merge(demo_definitions(), dg.Definitions(assets=models))
    sensor = defs.get_repository_def().get_sensor_def("source_change_sensor")
    with dg.instance_for_test() as instance:
        yield DemoPaths(data), defs, sensor, instance


def run(defs, instance, selection):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance, asset_selection=selection, raise_on_error=False
    )


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:"
        f"{e.asset_check_evaluation_data.check_name}": e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_a_changed_row_retrains_exactly_the_downstream_model_through_its_gates(demo):
    paths, defs, sensor, instance = demo
    repo = defs.get_repository_def()
    assert {s.name for s in repo.schedule_defs} == {"daily_dataset_refresh", "weekly_model_retrain"}
    cursor = evaluate(sensor, defs, instance).cursor
    with sqlite3.connect(paths.compliance) as con:
        con.execute(
            "UPDATE aml_cases SET narrative = narrative || ' Reviewed again.' WHERE case_id = 1"
        )
    data = evaluate(sensor, defs, instance, cursor)
    assert models_requested(data) == {"aml_model": ["aml_model", "aml_training_set"]}
    (request,) = data.run_requests
    assert request.tags["fed_assets/changed_sources"] == "compliance_store/aml_cases"

    result = run(defs, instance, request.asset_selection)
    assert result.success
    gates = checks(result)
    assert gates["aml_training_set:quality_gate"].passed
    assert gates["aml_training_set:retrain_needed"].passed
    assert instance.get_latest_materialization_event(K("aml_model")) is not None
    assert instance.get_latest_materialization_event(K("credit_model")) is None

    # Bad data in the silo: every SAR label cleared. The next retrain stops at the gate.
    with sqlite3.connect(paths.compliance) as con:
        con.execute("UPDATE aml_cases SET sar_filed = 0")
    again = evaluate(sensor, defs, instance, data.cursor)
    (request,) = again.run_requests
    failed = run(defs, instance, request.asset_selection)
    gate = checks(failed)["aml_training_set:quality_gate"]
    assert not gate.passed and "expect_column_mean_to_be_between(sar_filed)" in gate.description
    assert len(instance.fetch_materializations(K("aml_model"), limit=10).records) == 1


def test_the_demo_gates_pass_on_the_generated_data(demo):
    _, defs, _, instance = demo
    result = run(defs, instance, [K("credit_features"), K("aml_training_set")])
    assert result.success
    gates = checks(result)
    assert gates["credit_features:quality_gate"].passed, gates["credit_features:quality_gate"]
    assert gates["aml_training_set:quality_gate"].passed
