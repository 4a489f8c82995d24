"""The data profile and drift score: plain numbers in, plain numbers out."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from fed_assets.profile import drift, profile


def test_profile_reads_means_nulls_and_shares():
    table = pa.table({"x": [1.0, 3.0, None, 2.0], "c": ["a", "a", "b", None]})
    p = profile(table)
    assert p["rows"] == 4
    assert p["columns"]["x"]["mean"] == pytest.approx(2.0)
    assert p["columns"]["x"]["null_fraction"] == pytest.approx(0.25)
    assert p["columns"]["c"]["shares"] == pytest.approx({"a": 2 / 3, "b": 1 / 3})


def test_same_data_does_not_drift_and_moved_data_does():
    base = pa.table({"x": [float(i) for i in range(100)], "c": ["a", "b"] * 50})
    moved = pa.table({"x": [float(i) + 58 for i in range(100)], "c": ["a"] * 100})
    assert max(drift(profile(base), profile(base)).values()) == 0.0
    scores = drift(profile(base), profile(moved))
    assert scores["x"] == pytest.approx(2.0, rel=0.01)  # 58 / std(0..99) ≈ 2.0
    assert scores["c"] == pytest.approx(0.5)


def test_a_column_in_one_profile_only_is_infinite_drift():
    scores = drift(profile(pa.table({"x": [1, 2]})), profile(pa.table({"y": [1, 2]})))
    assert math.isinf(scores["x"]) and math.isinf(scores["y"])
