"""The daily dataset refresh and the weekly retrain: what they request, found through the graph,
and that a requested run passes its gates; a per-silo partitioned model gets a run per silo."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pyarrow as pa
import pytest

from fed_assets.asset_graph import MODEL_ROLE, MODEL_ROLE_TAG
from fed_assets.quality import DatasetSuite, drift_check, quality_check
from sensors.schedules import SCHEDULE_TAG, dataset_refresh_schedule, model_retrain_schedule
from tests.sensors.world import make_world, world_definitions

K = dg.AssetKey
PER_SILO = dg.StaticPartitionsDefinition(["crm", "lake"])


@dg.asset(
    partitions_def=PER_SILO,
    ins={"crm": dg.AssetIn("crm_features"), "lake": dg.AssetIn("lake_features")},
    tags={MODEL_ROLE_TAG: MODEL_ROLE},
)
def per_silo_model(context, crm, lake):
    """A stand-in per-silo model: one partition per silo, trained on that silo's dataset."""
    data = {"crm": crm, "lake": lake}[context.partition_key]
    return pa.table({"silo": [context.partition_key], "rows": [data.num_rows]})


@pytest.fixture
def setup(tmp_path):
    world = make_world(tmp_path / "w")
    daily, weekly = dataset_refresh_schedule(), model_retrain_schedule()
    checks = [
        quality_check("crm_features", DatasetSuite(name="crm", not_null=("id",))),
        drift_check("crm_features"),
    ]
    defs = world_definitions(
        world, schedules=[daily, weekly], assets=[per_silo_model], checks=checks
    )
    with dg.instance_for_test() as instance:
        yield world, defs, daily, weekly, instance


def tick(schedule, defs, instance):
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=dt.datetime(2026, 12, 7, 4, tzinfo=dt.UTC),
        repository_def=defs.get_repository_def(),
    )
    return schedule.evaluate_tick(context)


def test_daily_refresh_materialises_every_dataset_feeding_a_model(setup):
    world, defs, daily, _, instance = setup
    (request,) = tick(daily, defs, instance).run_requests
    assert sorted(k.to_user_string() for k in request.asset_selection) == [
        "crm_features",
        "joined_features",
        "lake_features",
    ]
    assert request.tags[SCHEDULE_TAG] == "daily_dataset_refresh"
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=request.asset_selection)
    assert result.success  # the quality gate passed; the drift gate has no retrain to gate
    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert evaluations["quality_gate"].passed
    assert (
        "no model downstream of the dataset in this run"
        in evaluations["retrain_needed"].description
    )


def test_weekly_retrain_requests_every_model_and_each_silo_partition(setup):
    _, defs, _, weekly, instance = setup
    requests = tick(weekly, defs, instance).run_requests
    plain = [r for r in requests if r.partition_key is None]
    partitioned = sorted(r.partition_key for r in requests if r.partition_key is not None)
    assert len(plain) == 1
    assert sorted(k.to_user_string() for k in plain[0].asset_selection) == [
        "crm_model",
        "joined_model",
        "lake_model",
    ]
    assert partitioned == ["crm", "lake"]
    assert len({r.run_key for r in requests}) == len(requests)
