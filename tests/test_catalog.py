"""The catalog: source assets from a snapshot, so a silo being down never blanks the asset graph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fed_assets.catalog import Catalog
from fed_assets.config import silos_from_yaml
from fed_assets.errors import ConfigurationError
from resources.silos.duckdb import DuckDBSilo
from resources.silos.sqlite import SQLiteSilo
from tests.servers import ROOT


@pytest.fixture
def two_silos(tmp_path):
    a = tmp_path / "a.duckdb"
    with duckdb.connect(str(a)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    silos = {
        "alpha": DuckDBSilo(name="alpha", path=str(a), region="eu"),
        "beta": SQLiteSilo(name="beta", path=str(tmp_path / "missing.sqlite")),
    }
    return silos, tmp_path / "catalog.json"


def keys(catalog: Catalog) -> set[str]:
    return {k.to_user_string() for a in catalog.source_assets() for k in a.keys}


def test_unreachable_silo_is_left_out_not_fatal(two_silos):
    silos, snapshot = two_silos
    assert keys(Catalog(silos, snapshot)) == {"alpha/t"}
    assert not snapshot.exists()  # reading the catalog never writes the snapshot
    Catalog(silos, snapshot).refresh()
    saved = json.loads(snapshot.read_text())["silos"]
    assert "beta" not in saved and saved["alpha"]["tables"]["t"]["columns"] == [["x", "int32"]]


def test_snapshot_keeps_a_silo_in_the_graph_while_it_is_down(two_silos):
    silos, snapshot = two_silos
    Catalog(silos, snapshot).refresh()
    Path(silos["alpha"].path).unlink()  # alpha goes down
    assert keys(Catalog(silos, snapshot)) == {"alpha/t"}
    outcome = Catalog(silos, snapshot).refresh(["alpha"])
    assert "alpha" in outcome["alpha"] and "does not exist" in outcome["alpha"]
    assert keys(Catalog(silos, snapshot)) == {"alpha/t"}  # old entry kept


def test_yaml_config_with_env_secrets(tmp_path, monkeypatch):
    config = tmp_path / "silos.yaml"
    config.write_text(
        "silos:\n"
        "  core:\n    kind: postgres\n    host: db\n    user: u\n    database: d\n"
        "    password: {env: CORE_PW}\n    region: eu\n"
        "  lake:\n    kind: parquet\n    root: /data/lake\n"
    )
    monkeypatch.setenv("CORE_PW", "s3cret")
    silos = silos_from_yaml(config, resolve_env=True)
    assert silos["core"].password == "s3cret" and silos["core"].region == "eu"
    assert silos["lake"].kind == "parquet"
    deferred = silos_from_yaml(config)
    assert isinstance(deferred["core"].password, dg.EnvVar)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("silos:\n  x:\n    kind: oracle\n", "no such silo kind"),
        ("silos:\n  x:\n    path: a.db\n", "has no 'kind'"),
        ("silos:\n  x:\n    kind: duckdb\n", "'x'"),
        ("nothing: here\n", "no 'silos:' mapping"),
    ],
)
def test_bad_yaml_config_is_explained(tmp_path, text, message):
    config = tmp_path / "silos.yaml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        silos_from_yaml(config)


def test_dagster_definitions_validate(tmp_path):
    from fed_assets.demo.generate import generate

    generate(tmp_path / "data", scale=0.05)
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        "FED_ASSETS_DATA": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    env.pop("FED_ASSETS_SILOS", None)
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All code locations passed validation" in done.stdout + done.stderr
    assert not (tmp_path / "data" / "catalog.json").exists()  # loading writes nothing


@pytest.mark.parametrize("seeded", [True, False], ids=["silos up", "every silo down"])
def test_loading_the_demo_code_location_writes_nothing(tmp_path, monkeypatch, seeded):
    from fed_assets.demo.definitions import demo_definitions
    from fed_assets.demo.generate import generate

    data = tmp_path / "data"
    if seeded:
        generate(data, scale=0.05)
    else:
        data.mkdir()
    monkeypatch.setenv("FED_ASSETS_DATA", str(data))
    monkeypatch.delenv("FED_ASSETS_SILOS", raising=False)
    monkeypatch.delenv("FED_ASSETS_CATALOG", raising=False)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    defs = demo_definitions()
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
    # with every silo down the demo still loads; its silo tables are placeholders then
    applications = defs.resolve_asset_graph().get(dg.AssetKey(["loans_warehouse", "applications"]))
    assert applications.is_observable == seeded
