"""A small federated shop over three silo kinds, plus the same data co-located in one DuckDB."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fed_assets.silo import SiloPolicy, SiloResource, TablePolicy
from resources.silos.duckdb import DuckDBSilo
from resources.silos.parquet import ParquetSilo
from resources.silos.sqlite import SQLiteSilo


def shop_tables() -> dict[str, dict[str, pa.Table]]:
    """silo → table → data; deterministic, with NULL join keys and non-ASCII text."""
    rng = np.random.default_rng(42)
    n_cust, n_orders, n_items = 200, 2_000, 6_000
    countries = ["DE", "FR", "US", "GB", "NG", "KY", "ES", "IT"]
    customers = pa.table(
        {
            "id": pa.array(np.arange(1, n_cust + 1), pa.int64()),
            "name": [f"Kundé {i}" for i in range(1, n_cust + 1)],
            "email": [f"c{i}@example.eu" for i in range(1, n_cust + 1)],
            "country": rng.choice(countries, n_cust),
            "segment": rng.choice(["retail", "premium", "sme"], n_cust),
            "income": rng.integers(20_000, 150_000, n_cust).astype(np.float64),
        }
    )
    cust = rng.integers(1, n_cust + 20, n_orders)  # some customers unknown to crm
    orders = pa.table(
        {
            "order_id": pa.array(np.arange(1, n_orders + 1), pa.int64()),
            "customer_id": pa.array(
                [None if i % 97 == 0 else int(c) for i, c in enumerate(cust)], pa.int64()
            ),
            "ordered_at": pa.array(
                [
                    dt.datetime(2025, 1, 1) + dt.timedelta(hours=int(h))
                    for h in rng.integers(0, 8760, n_orders)
                ],
                pa.timestamp("us"),
            ),
            "status": rng.choice(["open", "shipped", "returned"], n_orders, p=[0.2, 0.7, 0.1]),
            "total": rng.integers(100, 100_000, n_orders) / 100.0,
        }
    )
    items = pa.table(
        {
            "order_id": pa.array(rng.integers(1, n_orders + 1, n_items), pa.int64()),
            "sku": [f"SKU-{k:03d}" for k in rng.integers(1, 300, n_items)],
            "qty": pa.array(rng.integers(1, 10, n_items), pa.int64()),
            "price": rng.integers(100, 50_000, n_items) / 100.0,
        }
    )
    ref = pa.table(
        {
            "code": countries,
            "country_name": [
                "Deutschland",
                "France",
                "United States",
                "United Kingdom",
                "Nigeria",
                "Cayman Islands",
                "España",
                "Italia",
            ],
            "risk": [
                "standard",
                "standard",
                "standard",
                "standard",
                "high",
                "high",
                "standard",
                "standard",
            ],
        }
    )
    return {
        "crm": {"customers": customers},
        "lake": {"orders": orders, "items": items},
        "ref": {"countries": ref},
    }


def build_shop(root: Path) -> tuple[dict, duckdb.DuckDBPyConnection]:
    data = shop_tables()
    with duckdb.connect(str(root / "crm.duckdb")) as con:
        con.register("src", data["crm"]["customers"])
        con.execute("CREATE TABLE customers AS SELECT * FROM src")
    for name, table in data["lake"].items():
        (root / "lake" / name).mkdir(parents=True)
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), root / "lake" / name / "part-0.parquet")
        pq.write_table(table.slice(half), root / "lake" / name / "part-1.parquet")
    with sqlite3.connect(root / "ref.sqlite") as con:
        con.execute("CREATE TABLE countries (code TEXT, country_name TEXT, risk TEXT)")
        con.executemany(
            "INSERT INTO countries VALUES (?, ?, ?)",
            [tuple(r.values()) for r in data["ref"]["countries"].to_pylist()],
        )
    con.close()
    silos = {
        "crm": DuckDBSilo(
            name="crm",
            path=str(root / "crm.duckdb"),
            region="eu",
            policy=SiloPolicy(pii_columns=["customers.email", "customers.name"]),
        ),
        "lake": ParquetSilo(name="lake", root=str(root / "lake"), region="us"),
        "ref": SQLiteSilo(name="ref", path=str(root / "ref.sqlite"), region="eu"),
    }
    colocated = duckdb.connect()
    for silo, tables in data.items():
        colocated.execute(f"CREATE SCHEMA {silo}")
        for name, table in tables.items():
            colocated.register("src", table)
            colocated.execute(f"CREATE TABLE {silo}.{name} AS SELECT * FROM src")
            colocated.unregister("src")
    return silos, colocated


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    """(silos, co-located DuckDB connection) over the same data."""
    return build_shop(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="session")
def strict_shop(shop):
    """The shop with an aggregates-only orders table and a no-export silo, for policy tests."""
    silos, colocated = shop
    lake = silos["lake"].model_copy(
        update={
            "policy": SiloPolicy(
                tables={"orders": TablePolicy(export="aggregates_only", min_group_size=50)}
            )
        }
    )
    ref = silos["ref"].model_copy(update={"policy": SiloPolicy(export="none")})
    return {**silos, "lake": lake, "ref": ref}, colocated


@pytest.fixture
def scans(monkeypatch):
    """Every SQL statement any silo is asked to run (spying on the real silos, not replacing)."""
    seen: list[tuple[str, str]] = []
    real = SiloResource.scan

    def spy(self, sql):
        seen.append((self.name, sql))
        return real(self, sql)

    monkeypatch.setattr(SiloResource, "scan", spy)
    return seen
