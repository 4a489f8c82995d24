"""The source-change sensor against real silos: a SQLite file, a local Parquet lake and the
PostgreSQL test server. Each tick is evaluated as the sensor daemon does (``evaluate_tick`` with a
persistent instance and the cursor of the previous tick)."""

from __future__ import annotations

import sqlite3

import dagster as dg
import pytest

from fed_assets.catalog import Catalog
from fed_assets.definitions import build_definitions
from fed_assets.query.asset import federated_asset
from sensors.source_change import SOURCES_TAG, TRIGGER_TAG, source_change_sensor
from sensors.watch import Cursor
from tests.sensors.world import (
    evaluate,
    make_world,
    models_requested,
    silos,
    stand_in_model,
    world_definitions,
)
from tests.servers import free_port
from tests.silos.cases.postgres import connect, flush_stats, silo_for

K = dg.AssetKey


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "world")


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_a_row_inserted_retrains_exactly_the_models_downstream(world, instance):
    placement = {"dagster/concurrency_key": "cpu-pool"}
    sensor = source_change_sensor(
        world.catalog, tags=lambda key: {**placement, "model": key.path[-1]}
    )
    defs = world_definitions(world, sensors=[sensor])
    first = evaluate(sensor, defs, instance)
    assert first.run_requests == []  # the first tick is a baseline
    observed = {e.asset_key.to_user_string(): e for e in first.asset_events}
    assert set(observed) == {"crm/customers", "crm/notes", "lake/events"}
    assert observed["lake/events"].tags["dagster/data_version"]
    assert observed["lake/events"].metadata["version/method"].value == "metadata"

    world.insert_customer(1_000)
    second = evaluate(sensor, defs, instance, first.cursor)
    assert models_requested(second) == {
        "crm_model": ["crm_features", "crm_model"],
        "joined_model": ["crm_features", "joined_features", "joined_model"],
    }
    request = second.run_requests[0]
    assert request.tags[TRIGGER_TAG] == "source change"
    assert request.tags[SOURCES_TAG] == "crm/customers"
    assert request.tags["dagster/concurrency_key"] == "cpu-pool"
    assert request.tags["model"] == "crm_model"
    new_version = {
        e.asset_key.to_user_string(): e.tags["dagster/data_version"] for e in second.asset_events
    }
    assert new_version["crm/customers"] != observed["crm/customers"].tags["dagster/data_version"]

    # A restart that lost the cursor evaluates the tick again: the same run keys, so Dagster
    # launches each run once.
    replay = evaluate(sensor, defs, instance, first.cursor)
    assert [r.run_key for r in replay.run_requests] == [r.run_key for r in second.run_requests]
    quiet = evaluate(sensor, defs, instance, second.cursor)
    assert quiet.run_requests == [] and "0 table(s) changed" in quiet.skip_message


def test_a_new_parquet_file_retrains_the_lake_models(world, instance):
    sensor = source_change_sensor(world.catalog)
    defs = world_definitions(world, sensors=[sensor])
    cursor = evaluate(sensor, defs, instance).cursor
    world.add_events("part-1.parquet", [1, 2, 3])
    data = evaluate(sensor, defs, instance, cursor)
    assert set(models_requested(data)) == {"lake_model", "joined_model"}
    assert models_requested(data)["lake_model"] == ["lake_features", "lake_model"]


def test_the_requested_run_executes_datasets_then_model(world, instance):
    sensor = source_change_sensor(world.catalog)
    defs = world_definitions(world, sensors=[sensor])
    cursor = evaluate(sensor, defs, instance).cursor
    world.add_events("part-1.parquet", [7])
    (request, *_) = [
        r
        for r in evaluate(sensor, defs, instance, cursor).run_requests
        if r.run_key.startswith("lake_model")
    ]
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=request.asset_selection)
    assert result.success
    trained = instance.get_latest_materialization_event(K("lake_model"))
    assert trained is not None


def test_a_renamed_table_is_reported_and_the_rest_proceeds(world, instance, capfd):
    sensor = source_change_sensor(world.catalog)
    defs = world_definitions(world, sensors=[sensor])
    first = evaluate(sensor, defs, instance)
    with sqlite3.connect(world.crm) as con:
        con.execute("ALTER TABLE notes RENAME TO memos")
    world.add_events("part-1.parquet", [5])
    data = evaluate(sensor, defs, instance, first.cursor)
    log = capfd.readouterr().err  # the tick's log, as the UI shows it
    assert (
        "WARNING - crm/notes: not read this tick, its entry is kept: silo 'crm', table 'notes': the table is no longer in the silo (dropped or renamed)"
        in log
    )
    after = Cursor.from_json(data.cursor)
    before = Cursor.from_json(first.cursor)
    assert after.tables["crm/notes"] == before.tables["crm/notes"]  # not advanced
    assert after.tables["lake/events"].seq == 1
    assert "lake_model" in models_requested(data)


def test_schema_drift_is_recorded_and_the_federated_asset_names_the_column(world, instance):
    sensor = source_change_sensor(world.catalog)
    defs = world_definitions(world, sensors=[sensor])
    cursor = evaluate(sensor, defs, instance).cursor
    with sqlite3.connect(world.crm) as con:
        con.execute("ALTER TABLE customers DROP COLUMN label")
        con.execute("ALTER TABLE customers ADD COLUMN segment TEXT")
    data = evaluate(sensor, defs, instance, cursor)
    drift = {
        e.asset_key.to_user_string(): e.metadata["schema drift"].value
        for e in data.asset_events
        if "schema drift" in e.metadata
    }
    assert drift == {"crm/customers": "added: segment; removed: label"}
    request = next(r for r in data.run_requests if r.run_key.startswith("crm_model"))
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, asset_selection=request.asset_selection, raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "crm_features"
    assert "column 'label'" in failure.step_failure_data.error.cause.message
    assert instance.get_latest_materialization_event(K("crm_model")) is None


def test_a_retyped_column_is_recorded(tmp_path, instance):
    world = make_world(tmp_path / "w")
    sensor = source_change_sensor(world.catalog)
    defs = world_definitions(world, sensors=[sensor])
    cursor = evaluate(sensor, defs, instance).cursor
    with sqlite3.connect(world.crm) as con:
        con.executescript(
            "CREATE TABLE c2 (id INTEGER, score TEXT, label INTEGER);"
            "INSERT INTO c2 SELECT id, CAST(score AS TEXT), label FROM customers;"
            "DROP TABLE customers; ALTER TABLE c2 RENAME TO customers;"
        )
    data = evaluate(sensor, defs, instance, cursor)
    (event,) = [e for e in data.asset_events if e.asset_key == K(["crm", "customers"])]
    assert event.metadata["schema drift"].value == "retyped: score (double → string)"
    # the dependent federated asset fails at its next run, naming the column, before rows move
    request = next(r for r in data.run_requests if r.run_key.startswith("crm_model"))
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, asset_selection=request.asset_selection, raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "crm_features"
    message = failure.step_failure_data.error.cause.message
    assert "column 'score'" in message and "from double to string" in message
    assert instance.get_latest_materialization_event(K("crm_model")) is None


@pytest.fixture
def pg_world(tmp_path, postgres_schema):
    env, schema = postgres_schema
    with connect(env) as con:
        con.execute(f'CREATE TABLE "{schema}".loans (id bigint, amount double precision)')
        con.execute(
            f'INSERT INTO "{schema}".loans SELECT g, g * 1.5 FROM generate_series(1, 100) g'
        )
        flush_stats(con)
    root = tmp_path / "pg-world"
    world = make_world(root)
    catalog = Catalog({**silos(root), "pg": silo_for(env, schema)}, root / "catalog.json")
    loans = federated_asset("loan_features", "SELECT id, amount FROM pg.loans", catalog=catalog)
    lake = federated_asset("lake_features", "SELECT id, amount FROM lake.events", catalog=catalog)
    assets = [
        loans,
        lake,
        stand_in_model("loan_model", "loan_features"),
        stand_in_model("lake_model", "lake_features"),
    ]

    def definitions(sensor):
        return build_definitions(
            catalog, results_base_path=str(root / "results"), assets=assets, sensors=[sensor]
        )

    def insert(rows: int) -> None:
        with connect(env) as con:
            con.execute(
                f'INSERT INTO "{schema}".loans SELECT g, 1.0 FROM generate_series(1, {rows}) g'
            )
            flush_stats(con)

    return world, catalog, definitions, insert, (env, schema)


def test_a_silo_down_is_reported_others_proceed_and_its_entry_waits(pg_world, instance):
    world, catalog, definitions, insert, (env, schema) = pg_world
    sensor = source_change_sensor(catalog)
    defs = definitions(sensor)
    first = evaluate(sensor, defs, instance)
    insert(5)
    world.add_events("part-1.parquet", [1])
    down = {**catalog.silos, "pg": silo_for(env, schema, port=free_port(), connect_timeout_s=2)}
    data = evaluate(sensor, defs, instance, first.cursor, resources=down)
    assert set(models_requested(data)) == {"lake_model"}
    before, after = Cursor.from_json(first.cursor), Cursor.from_json(data.cursor)
    assert after.tables["pg/loans"] == before.tables["pg/loans"]
    # the change made while the silo was down is seen when it is back
    back = evaluate(sensor, defs, instance, data.cursor)
    assert set(models_requested(back)) == {"loan_model"}


def test_down_silo_error_names_the_silo(pg_world, instance):
    world, catalog, definitions, insert, (env, schema) = pg_world
    sensor = source_change_sensor(catalog)
    defs = definitions(sensor)
    first = evaluate(sensor, defs, instance)
    down = {**catalog.silos, "pg": silo_for(env, schema, port=free_port(), connect_timeout_s=2)}
    data = evaluate(sensor, defs, instance, first.cursor, resources=down)
    assert "not read: pg/loans: silo 'pg'" in data.skip_message


def test_threshold_counts_changed_rows_in_postgres(pg_world, instance):
    world, catalog, definitions, insert, _ = pg_world
    sensor = source_change_sensor(catalog, threshold=0.1)
    defs = definitions(sensor)
    cursor = evaluate(sensor, defs, instance).cursor
    insert(3)  # 3 of 103 rows: under 10 %
    small = evaluate(sensor, defs, instance, cursor)
    assert small.run_requests == []
    assert "loan_model: changed fraction below 10.00%: pg/loans 2.91%" in small.skip_message
    insert(10)  # 13 of 113 rows since the baseline: over 10 %
    enough = evaluate(sensor, defs, instance, small.cursor)
    assert set(models_requested(enough)) == {"loan_model"}


def test_cool_down_holds_a_second_retrain(world, instance):
    sensor = source_change_sensor(world.catalog, cooldown_s=3600)
    defs = world_definitions(world, sensors=[sensor])
    cursor = evaluate(sensor, defs, instance).cursor
    world.add_events("part-1.parquet", [1])
    first = evaluate(sensor, defs, instance, cursor)
    assert set(models_requested(first)) == {"lake_model", "joined_model"}
    world.add_events("part-2.parquet", [2])
    held = evaluate(sensor, defs, instance, first.cursor)
    assert held.run_requests == [] and "in cool-down" in held.skip_message


def test_by_default_a_retrain_goes_where_the_model_was_last_placed(world, instance):
    """The model's materialisation records the pool's run tags (as the placement report does);
    the retrain run carries them."""
    sensor = source_change_sensor(world.catalog)
    defs = world_definitions(world, sensors=[sensor])
    pool_tags = {"fed_assets/pool": "gpu-eu", "dagster/concurrency_key": "gpu"}
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "crm_model", metadata={"placement/tags": dg.MetadataValue.json(pool_tags)}
        )
    )
    cursor = evaluate(sensor, defs, instance).cursor
    world.insert_customer(2_000)
    data = evaluate(sensor, defs, instance, cursor)
    by_model = {r.run_key.split("@")[0]: r.tags for r in data.run_requests}
    assert by_model["crm_model"]["fed_assets/pool"] == "gpu-eu"
    assert by_model["crm_model"]["dagster/concurrency_key"] == "gpu"
    assert "fed_assets/pool" not in by_model["joined_model"]  # never placed: no pool tags
