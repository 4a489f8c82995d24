"""Placements of the eight TPC-H tables over four silo kinds: named ones and seeded random ones.

A layout maps each table to a silo name; ``SILO_KINDS`` says what kind each silo is. The named
layouts are chosen so that every big table sits in PostgreSQL in at least one of them and every
small table in a DuckDB file or SQLite in at least one (``check_coverage`` says whether a set of
layouts does).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

# The silos a layout may use and their kinds: a Parquet lake, a PostgreSQL server, a SQLite file
# and a DuckDB file.
SILO_KINDS: dict[str, str] = {"lake": "parquet", "pg": "postgres", "ref": "sqlite", "wh": "duckdb"}

TABLES = ("lineitem", "orders", "partsupp", "part", "customer", "supplier", "nation", "region")
# Big: grow with the scale factor (supplier: 10 k rows at SF1, lineitem 6 M); small: the fixed
# reference tables (25 nations, 5 regions).
BIG_TABLES = ("lineitem", "orders", "partsupp", "part", "customer", "supplier")
SMALL_TABLES = ("nation", "region")


def _layout(**silos: str) -> dict[str, str]:
    """``lake="lineitem orders"`` → ``{"lineitem": "lake", "orders": "lake"}``."""
    out = {table: silo for silo, names in silos.items() for table in names.split()}
    assert sorted(out) == sorted(TABLES), f"a layout must place all 8 tables: {sorted(out)}"
    return {table: out[table] for table in TABLES}


LAYOUTS: dict[str, dict[str, str]] = {
    # The benchmark's original placement: facts in the lake, masters in PostgreSQL.
    "default": _layout(
        lake="lineitem orders partsupp part", pg="customer supplier", ref="nation region"
    ),
    # Orders and customers in the OLTP database, parts in a DuckDB warehouse file.
    "pg-orders": _layout(
        lake="lineitem partsupp", pg="orders customer", wh="part supplier", ref="nation region"
    ),
    # The biggest table in PostgreSQL (no index on its join columns but the foreign keys).
    "pg-lineitem": _layout(
        pg="lineitem", lake="orders customer", wh="partsupp part", ref="supplier nation region"
    ),
    # The part catalogue in PostgreSQL, customers and nations in DuckDB.
    "pg-parts": _layout(
        pg="partsupp part supplier", lake="lineitem orders", wh="customer nation", ref="region"
    ),
    # Facts in a DuckDB file, the tiny reference tables in PostgreSQL.
    "duckdb-facts": _layout(
        wh="lineitem orders", lake="partsupp part customer", ref="supplier", pg="nation region"
    ),
    # Masters in SQLite (slow scans), orders and partsupp in PostgreSQL.
    "sqlite-masters": _layout(
        lake="lineitem", pg="orders partsupp", ref="part supplier nation region", wh="customer"
    ),
    # Every dimension in PostgreSQL, the facts in the lake.
    "pg-dims": _layout(lake="lineitem orders partsupp", pg="part customer supplier nation region"),
}


def random_layouts(n: int, seed: int) -> dict[str, dict[str, str]]:
    """``n`` layouts drawn with ``random.Random(seed)``: each table to one of the four silos."""
    rng = random.Random(seed)
    silos = sorted(SILO_KINDS)
    out = {}
    for i in range(n):
        out[f"random-{seed}-{i}"] = {table: rng.choice(silos) for table in TABLES}
    return out


def check_coverage(layouts: Mapping[str, Mapping[str, str]]) -> list[str]:
    """What the issue's coverage rule misses in ``layouts`` (empty when it holds): a big table
    never in PostgreSQL, a small one never in a DuckDB file or SQLite, fewer than 4 kinds."""
    problems = []
    for table in BIG_TABLES:
        if not any(layout[table] == "pg" for layout in layouts.values()):
            problems.append(f"{table} is never in PostgreSQL")
    for table in SMALL_TABLES:
        if not any(
            SILO_KINDS[layout[table]] in ("duckdb", "sqlite") for layout in layouts.values()
        ):
            problems.append(f"{table} is never in a DuckDB file or SQLite")
    kinds = {SILO_KINDS[s] for layout in layouts.values() for s in layout.values()}
    if len(kinds) < 4:
        problems.append(f"only {len(kinds)} silo kinds used: {sorted(kinds)}")
    return problems


def describe(layout: Mapping[str, str]) -> str:
    """``lake (parquet): lineitem, orders; pg (postgres): customer`` for a title line."""
    silos: dict[str, list[str]] = {}
    for table, silo in layout.items():
        silos.setdefault(silo, []).append(table)
    return "; ".join(
        f"{silo} ({SILO_KINDS.get(silo, '?')}): {', '.join(tables)}"
        for silo, tables in silos.items()
    )
