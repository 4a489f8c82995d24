"""Contract case: a real DuckDB file."""

from __future__ import annotations

import duckdb
import pytest

from resources.silos.duckdb import DuckDBSilo
from tests.silos.contract import NEW_ROW, PEOPLE, SiloCase


@pytest.fixture
def duckdb_case(tmp_path) -> SiloCase:
    path = str(tmp_path / "silo.duckdb")
    with duckdb.connect(path) as con:
        con.register("src", PEOPLE)
        con.execute("CREATE TABLE people AS SELECT * FROM src")
        con.execute("CREATE TABLE nobody AS SELECT * FROM src LIMIT 0")

    def append_row() -> None:
        with duckdb.connect(path) as con:
            con.execute("INSERT INTO people VALUES (?, ?, ?, ?, ?)", list(NEW_ROW.values()))

    return SiloCase(silo=DuckDBSilo(name="duck", path=path, region="eu"), append_row=append_row)
