"""End to end through the Dagster UI's own servers: ``dagster dev`` (webserver and daemon) on
127.0.0.1 serving a PostgreSQL silo and an S3 Parquet lake (the test servers). Runs are launched
through the GraphQL API; a row inserted in PostgreSQL and a new Parquet file in S3 lead, through
the daemon's ticks of the source-change sensor, to runs of exactly the models downstream; a
per-silo backfill is launched as the UI launches one; headless Chromium screenshots the lineage
graph into ``build/test-artifacts/`` (git-ignored). The models are real fine-tuned models (the
smallest configuration that trains)."""

from __future__ import annotations

import os
import time
import uuid

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.servers import ROOT, wait_for
from tests.silos.cases.parquet import s3_filesystem
from tests.silos.cases.postgres import connect, flush_stats
from tests.ui.dagster_dev import ARTIFACTS, chromium, dagster_dev, graphql

TRIGGER = '{key: "fed_assets/trigger", value: "source change"}'
RUNS = (
    "{ runsOrError(filter: {tags: [%s]}) { ... on Runs { results { runId status "
    "assetSelection { path } tags { key value } } } } }"
)
DONE = {"SUCCESS", "FAILURE", "CANCELED"}
# A run (a fresh process that trains a tiny model) takes 10-20 s alone and up to 90 s on a
# machine whose two cores are shared with other test sessions; waits allow for the latter.
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def e2e(server_env, tmp_path_factory):
    pg, s3 = server_env("postgres"), server_env("s3")
    schema, bucket = f"e2e_{uuid.uuid4().hex[:8]}", f"e2e-{uuid.uuid4().hex[:8]}"
    with connect(pg) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
        con.execute(f'CREATE TABLE "{schema}".loans (id bigint, amount float8, label int)')
        con.execute(
            f'INSERT INTO "{schema}".loans SELECT g, g * 10.0, g % 2 FROM generate_series(1, 60) g'
        )
        flush_stats(con)
    boto3.client(
        "s3",
        endpoint_url=s3["FED_TEST_S3_ENDPOINT"],
        aws_access_key_id=s3["FED_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=s3["FED_TEST_S3_SECRET_KEY"],
        region_name=s3["FED_TEST_S3_REGION"],
    ).create_bucket(Bucket=bucket)
    fs = s3_filesystem(s3)

    def add_events(name: str, ids: list[int]) -> None:
        events = pa.table(
            {"id": ids, "amount": [float(i) for i in ids], "label": [i % 2 for i in ids]}
        )
        pq.write_table(events, f"{bucket}/lake/events/{name}", filesystem=fs)

    add_events("part-0.parquet", list(range(60)))
    root = tmp_path_factory.mktemp("e2e")
    home = tmp_path_factory.mktemp("dagster-home")
    env = {
        **os.environ,
        **pg,
        **s3,
        "FED_E2E_ROOT": str(root),
        "FED_E2E_PG_SCHEMA": schema,
        "FED_E2E_BUCKET": bucket,
        "PYTHONPATH": str(ROOT),
    }

    def insert_loan(loan_id: int) -> None:
        with connect(pg) as con:
            con.execute(f'INSERT INTO "{schema}".loans VALUES (%s, 1.0, 1)', (loan_id,))
            flush_stats(con)

    try:
        with dagster_dev(["-m", "tests.sensors.e2e_location"], env=env, home=home) as dev:
            yield {
                "port": dev.port,
                "location": dev.location,
                "insert": insert_loan,
                "add": add_events,
            }
    finally:
        with connect(pg) as con:
            con.execute(f'DROP SCHEMA "{schema}" CASCADE')


def launch(e2e, assets: list[str]) -> str:
    launched = graphql(
        e2e["port"],
        "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
        "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": e2e["location"],
                    "repositoryName": "__repository__",
                    "jobName": "__ASSET_JOB",
                    "assetSelection": [{"path": [a]} for a in assets],
                },
                "mode": "default",
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def wait_run(e2e, run_id: str) -> str:
    seen = {}

    def finished() -> bool:
        seen["status"] = graphql(
            e2e["port"], f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}'
        )["runOrError"]["status"]
        return seen["status"] in DONE

    wait_for(finished, what=f"run {run_id}", timeout=RUN_TIMEOUT_S)
    return seen["status"]


def triggered(e2e) -> list[dict]:
    return graphql(e2e["port"], RUNS % TRIGGER)["runsOrError"]["results"]


def wait_triggered(e2e, count: int) -> list[dict]:
    """The sensor's runs once there are ``count`` and all have finished."""

    def ready() -> bool:
        runs = triggered(e2e)
        return len(runs) >= count and all(r["status"] in DONE for r in runs)

    wait_for(ready, what=f"{count} runs requested by the sensor", timeout=RUN_TIMEOUT_S)
    return triggered(e2e)


def sensor_ticked(e2e) -> bool:
    data = graphql(
        e2e["port"],
        "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { "
        "sensorState { status ticks(limit: 1) { status } } } } }",
        {
            "s": {
                "repositoryLocationName": e2e["location"],
                "repositoryName": "__repository__",
                "sensorName": "source_change_sensor",
            }
        },
    )["sensorOrError"]["sensorState"]
    return data["status"] == "RUNNING" and any(t["status"] != "STARTED" for t in data["ticks"])


def models_of(runs: list[dict]) -> dict[str, list[str]]:
    """Model (with partition) → the assets its run materialised."""
    out = {}
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        keys = sorted("/".join(a["path"]) for a in run["assetSelection"])
        model = next(k for k in keys if "model" in k)
        partition = tags.get("dagster/partition")
        out[f"{model}[{partition}]" if partition else model] = keys
    return out


# Seven runs, each a fresh process: about 2 minutes alone, 8 or more on a machine shared with
# other test sessions.
@pytest.mark.timeout(1200)
def test_launches_sensor_retrains_backfill_and_lineage_screenshot(e2e):
    began = time.monotonic()
    # The federated assets and the models on them, launched as the UI launches them.
    assets = ["loan_features", "event_features", "loan_model", "event_model"]
    assert wait_run(e2e, launch(e2e, assets)) == "SUCCESS"
    wait_for(lambda: sensor_ticked(e2e), what="a first sensor tick (the baseline)", timeout=60)
    assert triggered(e2e) == []

    # A row inserted in PostgreSQL: exactly the models downstream of pg/loans retrain.
    e2e["insert"](61)
    runs = wait_triggered(e2e, 2)
    assert models_of(runs) == {
        "loan_model": ["loan_features", "loan_model"],
        "per_silo_model[pg]": ["per_silo_model"],  # reads pg.loans in place
    }
    assert {r["status"] for r in runs} == {"SUCCESS"}
    placement = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert placement["fed_assets/pool"].startswith("cpu-for-")
    assert placement["fed_assets/changed_sources"] == "pg/loans"

    # A new Parquet file in the S3 lake: exactly the models downstream of lake/events.
    e2e["add"]("part-1.parquet", [100, 101])
    runs = wait_triggered(e2e, 4)
    lake_runs = [
        r
        for r in runs
        if {"key": "fed_assets/changed_sources", "value": "lake/events"} in r["tags"]
    ]
    assert models_of(lake_runs) == {
        "event_model": ["event_features", "event_model"],
        "per_silo_model[lake]": ["per_silo_model"],
    }
    assert {r["status"] for r in lake_runs} == {"SUCCESS"}

    # A backfill of the per-silo model's partitions, as launched from the UI.
    launched = graphql(
        e2e["port"],
        "mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { "
        "__typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }",
        {"p": {"assetSelection": [{"path": ["per_silo_model"]}], "partitionNames": ["pg", "lake"]}},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = launched["backfillId"]

    def backfill_done() -> bool:
        runs = graphql(e2e["port"], RUNS % f'{{key: "dagster/backfill", value: "{backfill}"}}')
        results = runs["runsOrError"]["results"]
        return len(results) == 2 and all(r["status"] in DONE for r in results)

    wait_for(backfill_done, what=f"backfill {backfill}", timeout=RUN_TIMEOUT_S)
    results = graphql(e2e["port"], RUNS % f'{{key: "dagster/backfill", value: "{backfill}"}}')
    assert {r["status"] for r in results["runsOrError"]["results"]} == {"SUCCESS"}

    # The lineage graph, rendered by a real browser, kept as a test artefact.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "lineage.png"
    shot.unlink(missing_ok=True)
    chromium(
        f"http://127.0.0.1:{e2e['port']}/assets/per_silo_model"
        "?view=lineage&lineageScope=upstream&lineageDepth=4",
        f"--screenshot={shot}",
    )
    assert shot.exists() and shot.stat().st_size > 20_000, "the screenshot is missing or blank"
    print(f"end to end in {time.monotonic() - began:.0f} s; lineage screenshot: {shot}")
