"""Contract case: a real SQLite file."""

from __future__ import annotations

import sqlite3

import pytest

from resources.silos.sqlite import SQLiteSilo
from tests.silos.contract import NEW_ROW, PEOPLE, SiloCase

_DDL = "(id INTEGER, name TEXT, amount REAL, active BOOLEAN, joined TIMESTAMP)"


def _row(values) -> tuple:
    return tuple(v.isoformat(sep=" ") if hasattr(v, "isoformat") else v for v in values)


@pytest.fixture
def sqlite_case(tmp_path) -> SiloCase:
    path = str(tmp_path / "silo.sqlite")
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE people {_DDL}")
        con.execute(f"CREATE TABLE nobody {_DDL}")
        con.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?, ?)",
            [_row(r.values()) for r in PEOPLE.to_pylist()],
        )
    con.close()

    def append_row() -> None:
        with sqlite3.connect(path) as con:
            con.execute("INSERT INTO people VALUES (?, ?, ?, ?, ?)", _row(NEW_ROW.values()))
        con.close()

    return SiloCase(silo=SQLiteSilo(name="lite", path=path, region="us"), append_row=append_row)
