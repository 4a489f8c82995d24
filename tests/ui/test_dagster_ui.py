"""`dagster dev` on the demo: the UI loads, shows the silo groups, and a run launched through its
GraphQL API materialises a read-in-place asset. A real Chromium renders the asset graph."""

from __future__ import annotations

import os

import pytest

from fed_assets.demo.generate import generate
from tests.servers import wait_for
from tests.ui.dagster_dev import chromium, dagster_dev, graphql

SILO_GROUPS = {"eu_core_banking", "us_payments", "loans_warehouse", "compliance_store"}


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo-data")
    home = tmp_path_factory.mktemp("dagster-home")
    generate(data, scale=0.25, seed=5)
    env = {**os.environ, "FED_ASSETS_DATA": str(data)}
    env.pop("FED_ASSETS_SILOS", None)
    with dagster_dev(["-w", "workspace.yaml"], env=env, home=home) as dev:
        yield dev.port, dev.location


def test_asset_graph_has_silo_groups_and_lineage(ui):
    port, _ = ui
    data = graphql(
        port,
        "{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }",
    )
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert {n["groupName"] for n in nodes.values()} >= SILO_GROUPS
    deps = {"/".join(d["path"]) for d in nodes["sar_rate_by_structuring"]["dependencyKeys"]}
    assert deps == {"compliance_store/aml_cases", "us_payments/transactions"}
    federated = {"/".join(d["path"]) for d in nodes["credit_features"]["dependencyKeys"]}
    assert federated == {
        "eu_core_banking/customers",
        "us_payments/transactions",
        "loans_warehouse/applications",
    }


@pytest.mark.parametrize("asset", ["sar_rate_by_structuring", "aml_training_set"])
def test_run_launched_through_graphql_materialises(ui, asset):
    port, location = ui
    launched = graphql(
        port,
        "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
        "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": location,
                    "repositoryName": "__repository__",
                    "jobName": "__ASSET_JOB",
                    "assetSelection": [{"path": [asset]}],
                },
                "mode": "default",
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    status = {}

    def finished() -> bool:
        status["value"] = graphql(
            port, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}'
        )["runOrError"]["status"]
        return status["value"] in ("SUCCESS", "FAILURE", "CANCELED")

    wait_for(finished, what="the launched run", timeout=120)
    assert status["value"] == "SUCCESS"
    materialized = graphql(
        port,
        f'{{ assetOrError(assetKey: {{path: ["{asset}"]}}) {{ ... on Asset {{ '
        "assetMaterializations(limit: 1) { runId metadataEntries { label __typename } } } } }",
    )["assetOrError"]["assetMaterializations"]
    assert materialized[0]["runId"] == run_id
    shown = {m["label"]: m["__typename"] for m in materialized[0]["metadataEntries"]}
    assert "path" in shown
    if asset == "aml_training_set":  # a federated query: its plan and audit are recorded
        assert {"plan", "fragments", "residency audit", "dagster/row_count"} <= set(shown)
        tables = ("fragments", "residency audit", "rows estimated vs actual", "seconds by stage")
        assert {shown[t] for t in tables} == {"TableMetadataEntry"}  # tables, not raw JSON
        assert shown["plan"] == "MarkdownMetadataEntry"
    else:  # read in place: what each input read shows on the asset that read it
        assert shown["silo reads"] == "TableMetadataEntry"
        assert (
            shown["sql read/cases"] == shown["sql read/near_threshold"] == "MarkdownMetadataEntry"
        )


def test_browser_renders_the_silo_groups(ui):
    port, _ = ui
    dom = chromium(f"http://127.0.0.1:{port}/asset-groups", "--dump-dom")
    shown = {g for g in SILO_GROUPS if g in dom}
    assert shown == SILO_GROUPS, f"rendered page lacks {SILO_GROUPS - shown}"
