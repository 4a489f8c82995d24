"""The benchmark's layouts cover what issue 12 asks for, and random layouts are reproducible."""

from __future__ import annotations

from benchmarks.tpch.layouts import LAYOUTS, TABLES, check_coverage, random_layouts


def test_named_layouts_cover_every_big_table_in_postgres_and_small_ones_in_files():
    assert len(LAYOUTS) >= 7
    assert check_coverage(LAYOUTS) == []
    assert all(sorted(layout) == sorted(TABLES) for layout in LAYOUTS.values())


def test_coverage_names_what_is_missing():
    only_default = {"default": LAYOUTS["default"]}
    problems = check_coverage(only_default)
    assert "lineitem is never in PostgreSQL" in problems
    assert any("silo kinds" in p for p in problems)


def test_random_layouts_are_seeded():
    assert random_layouts(3, seed=7) == random_layouts(3, seed=7)
    assert random_layouts(3, seed=7) != random_layouts(3, seed=8)
    assert all(set(layout) == set(TABLES) for layout in random_layouts(5, seed=1).values())
