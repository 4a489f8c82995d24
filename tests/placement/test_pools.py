"""Pools, links and the estate: the shipped example loads, wrong figures are refused by name."""

from __future__ import annotations

import os

import pytest
import yaml

from fed_assets.errors import ConfigurationError
from fed_assets.placement import ComputePool, Link, PoolConfigError, local_pool
from resources.compute import EXAMPLE_ESTATE, ComputeEstate
from tests.placement.conftest import pool


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"memory_gb": 0}, "memory_gb=0 is not positive"),
        ({"memory_gb": -8}, "memory_gb=-8 is not positive"),
        ({"peak_flops": {"fp31": 1e12}}, "unknown dtype 'fp31'"),
        ({"peak_flops": {}}, "peak_flops is empty"),
        ({"peak_flops": {"fp32": 0}}, "peak_flops\\['fp32'\\]=0 is not positive"),
        ({"usd_per_hour": -1}, "usd_per_hour=-1 is negative"),
        ({"grid_gco2_per_kwh": -5}, "grid_gco2_per_kwh=-5 is negative"),
        ({"watts": 0}, "watts=0 is not positive"),
        ({"pue": 0.9}, "pue=0.9 is outside"),
        ({"utilisation": 1.5}, "utilisation=1.5 is outside"),
        ({"count": 0}, "count=0 is below 1"),
        ({"gpu_type": None}, "device 'cuda' without gpu_type"),
        ({"device": "cpu"}, "device 'cpu' contradicts gpu_type='test-gpu'"),
        ({"peak_flops": {"fp32": 8e12, "fp16": 1e12}}, "fp16 is below fp32"),
    ],
)
def test_contradictory_or_impossible_figures_are_refused_naming_the_pool(overrides, message):
    with pytest.raises(PoolConfigError, match=message) as err:
        pool(**overrides)
    assert "compute pool 'gpu'" in str(err.value)
    assert "Fix:" in str(err.value)


def test_a_negative_link_price_is_refused():
    with pytest.raises(PoolConfigError, match="link eu → us: usd_per_gb=-0.1 is negative"):
        Link(source="eu", destination="us", usd_per_gb=-0.1)


def test_duplicate_pool_names_and_routes_are_refused():
    with pytest.raises(PoolConfigError, match="names must be unique"):
        ComputeEstate(pools=[pool(), pool()], detect_local=False)
    link = Link(source="eu", destination="us", usd_per_gb=0.1)
    with pytest.raises(PoolConfigError, match="a route is priced twice"):
        ComputeEstate(links=[link, link], detect_local=False)


def test_a_yaml_pool_with_a_missing_figure_names_the_file_and_what_to_give(tmp_path):
    settings = yaml.safe_load(EXAMPLE_ESTATE.read_text())
    del settings["pools"][0]["memory_gb"]
    path = tmp_path / "estate.yaml"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(PoolConfigError, match="memory_gb") as err:
        ComputeEstate.from_yaml(path)
    assert str(path) in str(err.value)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        ComputeEstate.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigurationError, match="not a YAML mapping"):
        ComputeEstate.from_yaml(tmp_path / "list.yaml")


def test_the_example_estate_documents_each_pool_and_spans_the_demo_regions():
    estate = ComputeEstate.example()
    pools = estate.all_pools()
    assert {p.gpu_type for p in pools} >= {"L4", "T4", "A100-80GB", "H100-80GB"}
    assert {p.region for p in pools} == {"eu", "uk", "us"}
    assert all(p.location and p.usd_per_hour > 0 and p.grid_gco2_per_kwh > 0 for p in pools)
    text = EXAMPLE_ESTATE.read_text()
    for source in ("datasheet", "region-carbon-info", "PUE", "WUE"):
        assert source in text  # every kind of figure says where it comes from
    assert estate.candidate_regions() == ["eu", "uk", "us"]
    assert estate.link("eu", "us").usd_per_gb == 0.05


def test_this_machine_is_detected_with_a_measured_flop_rate():
    local = local_pool()
    assert local.name == "local" and local.usd_per_hour == 0
    assert local.device in ("cpu", "cuda")
    # two cores of any CPU made this century: between 1 GFLOP/s and 10 TFLOP/s
    assert 1e9 < local.peak_flops["fp32"] < 1e13
    assert local.memory_gb > 0.5
    if local.device == "cpu":
        assert str(os.cpu_count()) in local.location
    estate = ComputeEstate(engine_region="uk")
    assert [p.name for p in estate.all_pools()] == ["local"]
    assert estate.pool("local").region == "uk"
    with pytest.raises(ConfigurationError, match="no pool of that name"):
        estate.pool("tpu")


def test_a_pool_quotes_no_figure_it_was_not_given():
    assert pool().peak_for("fp16") == 4e12
    with pytest.raises(PoolConfigError, match="no peak_flops figure for dtype 'int8'"):
        pool().peak_for("int8")
    assert ComputePool.model_fields["memory_gb"].description  # every field says what it is
    assert all(f.description for f in ComputeEstate.model_fields.values())
