"""Small tables with planted signal, and a tiny training config, for the training tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from fed_assets.train.config import TrainingConfig

# Tiny on purpose: one layer, width 32, context 64, a few hundred steps at most.
TINY = TrainingConfig(
    epochs=3,
    batch_size=16,
    learning_rate=5e-3,
    max_length=64,
    n_layer=1,
    n_embd=32,
    n_head=2,
    vocab_size=400,
    log_every=1000,
)


def loans(rows: int = 300, *, seed: int = 0, classes: int = 2) -> pa.Table:
    """Loans whose label follows ``grade`` (and income a little): learnable in a few steps."""
    rng = np.random.default_rng(seed)
    grade = rng.choice(["a", "b", "c"], rows)
    income = np.round(rng.lognormal(10.5, 0.4, rows), -2)
    risk = (grade == "c") * 2.0 + (grade == "b") * 0.6 - (income > 40_000) * 0.5
    noisy = risk + rng.normal(0, 0.4, rows)
    if classes == 2:
        label = noisy > 1.0
    else:
        label = np.array(["low", "mid", "high"])[np.digitize(noisy, [0.3, 1.3])]
    return pa.table(
        {"grade": grade, "income": income, "region": rng.choice(["n", "s"], rows), "label": label}
    )


def notes(rows: int = 200, *, seed: int = 0) -> pa.Table:
    """Short case notes built from a small phrase book: a unigram model cannot see the order."""
    rng = np.random.default_rng(seed)
    phrases = [
        "cash deposits below the threshold",
        "transfers to an offshore account",
        "salary and household spending",
        "invoices explain the payments",
    ]
    texts = [
        f"case {rng.integers(1, 9)}: {rng.choice(phrases)}; {rng.choice(phrases)}."
        for _ in range(rows)
    ]
    return pa.table({"narrative": texts})


@pytest.fixture
def tiny() -> TrainingConfig:
    return TINY


@pytest.fixture(scope="session")
def banks(tmp_path_factory):
    """Three regional loan books in three silo kinds (DuckDB, SQLite, Parquet); the SQLite one
    is ``export: none``. Returns a catalog with its snapshot written."""
    import sqlite3

    import duckdb
    import pyarrow.parquet as pq

    from fed_assets.catalog import Catalog
    from fed_assets.silo import SiloPolicy
    from resources.silos.duckdb import DuckDBSilo
    from resources.silos.parquet import ParquetSilo
    from resources.silos.sqlite import SQLiteSilo

    root = tmp_path_factory.mktemp("banks")
    books = {
        name: loans(240, seed=i).append_column("loan_id", pa.array(range(240), pa.int64()))
        for i, name in enumerate(["de_bank", "fr_bank", "es_bank"])
    }
    with duckdb.connect(str(root / "de.duckdb")) as con:
        con.register("src", books["de_bank"])
        con.execute("CREATE TABLE loans AS SELECT * FROM src")
    with sqlite3.connect(root / "fr.sqlite") as con:
        con.execute(
            "CREATE TABLE loans (grade TEXT, income REAL, region TEXT, label BOOLEAN, loan_id INTEGER)"
        )
        con.executemany(
            "INSERT INTO loans VALUES (?, ?, ?, ?, ?)",
            [tuple(r.values()) for r in books["fr_bank"].to_pylist()],
        )
    con.close()
    (root / "es" / "loans").mkdir(parents=True)
    pq.write_table(books["es_bank"], root / "es" / "loans" / "part-0.parquet")
    silos = {
        "de_bank": DuckDBSilo(
            name="de_bank",
            path=str(root / "de.duckdb"),
            region="de",
            policy=SiloPolicy(allowed_regions=["de", "eu"]),
        ),
        "fr_bank": SQLiteSilo(
            name="fr_bank",
            path=str(root / "fr.sqlite"),
            region="fr",
            policy=SiloPolicy(export="none"),
        ),
        "es_bank": ParquetSilo(name="es_bank", root=str(root / "es"), region="es"),
    }
    catalog = Catalog(silos, root / "catalog.json")
    assert set(catalog.refresh().values()) == {"ok"}
    return catalog
