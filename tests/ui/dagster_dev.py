"""`dagster dev` for tests: start it on a free port, talk to it over GraphQL, launch runs the way
the UI's Materialize button does, read back materialisations, and render its pages in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers import ROOT, free_port, wait_for

DONE = {"SUCCESS", "FAILURE", "CANCELED"}
# Where UI tests keep what the browser rendered (git-ignored).
ARTIFACTS = ROOT / "build" / "test-artifacts"
# What `dagster dev` needs in $DAGSTER_HOME/dagster.yaml so that no dialog covers the UI.
QUIET = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
LAUNCH = (
    "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
    "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
    "... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }"
)
# Every metadata entry kind the model assets record, with the field that carries its value.
ENTRY_VALUES = (
    "... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intRepr } "
    "... on TextMetadataEntry { text } ... on MarkdownMetadataEntry { mdStr } "
    "... on JsonMetadataEntry { jsonString } ... on BoolMetadataEntry { boolValue } "
    "... on PathMetadataEntry { path } ... on TableMetadataEntry { table { records } }"
)
FAILURES = (
    '{ runOrError(runId: "%s") { ... on Run { eventConnection { events { __typename '
    "... on MessageEvent { message stepKey } ... on ExecutionStepFailureEvent { error { message } } "
    "} } } } }"
)


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """The ``data`` of one GraphQL request to the webserver on ``port`` (errors raise)."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise AssertionError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


@dataclass(frozen=True)
class DagsterDev:
    """A running `dagster dev` (webserver and daemon) and its one code location."""

    port: int
    location: str
    home: Path

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.port, query, variables)

    def launch(self, assets: Sequence[str], *, tags: Mapping[str, str] | None = None) -> str:
        """Launch a run of ``assets`` as the UI's Materialize button does; its run id."""
        params = {
            "selector": {
                "repositoryLocationName": self.location,
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": a.split("/")} for a in assets],
            },
            "mode": "default",
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
            },
        }
        launched = self.graphql(LAUNCH, {"p": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def status(self, run_id: str) -> str:
        query = f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}'
        return self.graphql(query)["runOrError"]["status"]

    def wait(self, run_ids: Sequence[str], *, timeout: float) -> dict[str, str]:
        """Each run's final status once all of ``run_ids`` have finished."""
        seen: dict[str, str] = {}

        def finished() -> bool:
            seen.update({r: self.status(r) for r in run_ids if seen.get(r) not in DONE})
            return all(s in DONE for s in seen.values())

        wait_for(finished, what=f"runs {', '.join(run_ids)}", timeout=timeout)
        return seen

    def failure(self, run_id: str) -> str:
        """The error messages of a failed run (to show in an assertion)."""
        events = self.graphql(FAILURES % run_id)["runOrError"]["eventConnection"]["events"]
        failed = [
            f"{e['stepKey']}: {e['error']['message']}"
            for e in events
            if e["__typename"] == "ExecutionStepFailureEvent"
        ]
        return "\n".join(failed) or "\n".join(e["message"] for e in events[-5:])

    def materialization(self, asset: str, partition: str | None = None) -> dict[str, Any]:
        """The latest materialisation of ``asset`` (or one partition): run id and metadata by
        label, each value as the UI shows it (tables as lists of records)."""
        where = f'(partitions: ["{partition}"], limit: 1)' if partition else "(limit: 1)"
        path = json.dumps(asset.split("/"))
        found = self.graphql(
            f"{{ assetOrError(assetKey: {{path: {path}}}) {{ ... on Asset {{ "
            f"assetMaterializations{where} {{ runId partition "
            f"metadataEntries {{ label __typename {ENTRY_VALUES} }} }} }} }} }}"
        )["assetOrError"]["assetMaterializations"]
        assert found, f"{asset} {partition or ''} was never materialised"
        return {"run": found[0]["runId"], "metadata": _values(found[0]["metadataEntries"])}


def _values(entries: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in entries:
        kind = entry["__typename"]
        if kind == "FloatMetadataEntry":
            out[entry["label"]] = entry["floatValue"]
        elif kind == "IntMetadataEntry":
            out[entry["label"]] = int(entry["intRepr"])
        elif kind == "TableMetadataEntry":
            out[entry["label"]] = [json.loads(r) for r in entry["table"]["records"]]
        elif kind == "JsonMetadataEntry":
            out[entry["label"]] = json.loads(entry["jsonString"])
        else:
            key = next((k for k in entry if k not in ("label", "__typename")), None)
            out[entry["label"]] = entry[key] if key else kind
    return out


@contextmanager
def dagster_dev(
    target: Sequence[str], *, env: Mapping[str, str], home: Path, timeout: float = 120
) -> Iterator[DagsterDev]:
    """`dagster dev <target>` on 127.0.0.1 with ``$DAGSTER_HOME=home``, until every code location
    has loaded; stopped (SIGINT to its process group, then SIGKILL) on exit."""
    dagster_yaml = home / "dagster.yaml"
    if not dagster_yaml.exists():
        dagster_yaml.write_text(QUIET)
    port = free_port()
    log = open(home / "dagster-dev.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", *target]
        + ["-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env={**env, "DAGSTER_HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    status = (
        "{ workspaceOrError { ... on Workspace { locationEntries { name "
        "loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    )

    def entries() -> list[dict]:
        return graphql(port, status)["workspaceOrError"]["locationEntries"]

    def loaded() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"dagster dev exited; see {home / 'dagster-dev.log'}")
        found = entries()
        return bool(found) and all(e["loadStatus"] == "LOADED" for e in found)

    try:
        wait_for(loaded, what="dagster dev", timeout=timeout)
        (entry,) = entries()
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        yield DagsterDev(port, entry["name"], home)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def chromium(url: str, *output: str, timeout: float = 120) -> str:
    """Load ``url`` in headless Chromium with ``output`` flags (``--dump-dom``,
    ``--screenshot=PATH``); its stdout."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Chromium is required for the UI test: apt-get install -y chromium"
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--window-size=1400,900",
                # Without a virtual time budget the page is blank; at 3000 ms nodes still load.
                "--virtual-time-budget=15000",
                *output,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        ).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)
