"""Concurrent fragments over one DuckDB file: one with semi-join keys registered as Arrow tables,
others scanning at the same time (what a federated plan with two fragments in one DuckDB silo
does). DuckDB 2.0.1 failed about one such start in twenty with "Table Function with name
python_arrow_scan does not exist" before scans of one file started one at a time."""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa

from resources.silos.duckdb import DuckDBSilo

ROUNDS = 40


def test_keyed_and_plain_scans_of_one_file_run_side_by_side(tmp_path):
    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE part AS SELECT range AS p_partkey, 'x' || range AS p_name "
            "FROM range(20000)"
        )
        con.execute(
            "CREATE TABLE supplier AS SELECT range AS s_suppkey, range % 25 AS "
            "s_nationkey FROM range(1000)"
        )
    silo = DuckDBSilo(name="wh", path=str(path))
    keyed = 'SELECT "s_suppkey" AS "s_suppkey", "s_nationkey" AS "s_nationkey" FROM "supplier"'
    errors: list[str] = []
    counts: list[int] = []

    def plain() -> None:
        for _ in range(ROUNDS):
            try:
                silo.scan("SELECT p_partkey FROM part WHERE p_name LIKE '%7%'").read_all()
            except Exception as err:  # collected: the assertion below names them
                errors.append(str(err))

    def with_keys() -> None:
        for _ in range(ROUNDS):
            try:
                table = silo.scan_keyed(keyed, {"s_nationkey": pa.array([1, 2])}).read_all()
                counts.append(table.num_rows)
            except Exception as err:
                errors.append(str(err))

    threads = [threading.Thread(target=f) for f in (plain, with_keys, with_keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert counts == [80] * (2 * ROUNDS)  # suppliers of nations 1 and 2
