"""A DuckDB file silo opens its file once per federated query, and lets writers in afterwards."""

from __future__ import annotations

import time

import duckdb
import pyarrow as pa
import pytest

import fed_assets
from fed_assets.query import plan
from resources.silos import _duckdb_keeper
from resources.silos.duckdb import DuckDBSilo
from resources.silos.parquet import ParquetSilo


@pytest.fixture
def warehouse(tmp_path):
    path = str(tmp_path / "wh.duckdb")
    with duckdb.connect(path) as con:
        con.execute("CREATE TABLE orders AS SELECT range AS id, range % 7 AS cust FROM range(1000)")
        con.execute(
            "CREATE TABLE customers AS SELECT range AS cust, 'c' || range AS name FROM range(7)"
        )
    lake = tmp_path / "lake"
    lake.mkdir()
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"cust": [0, 1, 2], "region": ["eu", "us", "eu"]}), lake / "regions.parquet"
    )
    return path, ParquetSilo(name="lake", root=str(lake))


def _count_opens(monkeypatch) -> list[str]:
    opened: list[str] = []
    real = DuckDBSilo._open

    def counting(self):
        opened.append(self.path)
        return real(self)

    monkeypatch.setattr(DuckDBSilo, "_open", counting)
    return opened


SQL = (
    "SELECT c.name, r.region, count(*) AS n FROM wh.orders o JOIN wh.customers c ON o.cust = c.cust "
    "JOIN lake.regions r ON r.cust = c.cust GROUP BY 1, 2 ORDER BY 1"
)


def test_one_query_opens_the_file_once_then_a_writer_gets_in(warehouse, monkeypatch):
    path, lake = warehouse
    opened = _count_opens(monkeypatch)
    wh = DuckDBSilo(name="wh", path=path)
    result = fed_assets.query(SQL, [wh, lake])
    assert result.table.column("n").to_pylist() == [143, 143, 143]
    assert opened == [path]  # schema look-ups, statistics and the fragment shared one open
    assert path not in _duckdb_keeper.held_paths()
    with duckdb.connect(path) as writer:  # read-write, in this process: refused if still open
        writer.execute("INSERT INTO orders VALUES (1000, 0)")
    again = fed_assets.query(SQL, [wh, lake])
    assert again.table.column("n").to_pylist() == [144, 143, 143]


def test_keep_open_reuses_the_file_across_queries_until_idle(warehouse, monkeypatch):
    path, lake = warehouse
    opened = _count_opens(monkeypatch)
    wh = DuckDBSilo(name="wh", path=path, keep_open_s=0.3)
    for _ in range(3):
        fed_assets.query(SQL, [wh, lake])
    assert opened == [path]
    assert path in _duckdb_keeper.held_paths()
    deadline = time.monotonic() + 10
    while path in _duckdb_keeper.held_paths() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path not in _duckdb_keeper.held_paths()
    with duckdb.connect(path) as writer:
        writer.execute("INSERT INTO orders VALUES (1000, 0)")


def test_close_lets_a_writer_in_at_once(warehouse):
    path, lake = warehouse
    wh = DuckDBSilo(name="wh", path=path, keep_open_s=60)
    fed_assets.query(SQL, [wh, lake])
    with pytest.raises(duckdb.ConnectionException):
        duckdb.connect(path)  # still held: DuckDB refuses a second configuration of one file
    wh.close()
    with duckdb.connect(path) as writer:
        writer.execute("INSERT INTO orders VALUES (1000, 0)")


def test_a_file_renamed_over_the_held_one_is_read_afresh(warehouse, tmp_path):
    path, lake = warehouse
    wh = DuckDBSilo(name="wh", path=path, keep_open_s=60)
    fed_assets.query(SQL, [wh, lake])
    fresh = str(tmp_path / "fresh.duckdb")
    with duckdb.connect(fresh) as con:
        con.execute("CREATE TABLE orders AS SELECT range AS id, 0 AS cust FROM range(5)")
        con.execute(
            "CREATE TABLE customers AS SELECT range AS cust, 'c' || range AS name FROM range(7)"
        )
    import os

    os.replace(fresh, path)
    result = fed_assets.query(SQL, [wh, lake])
    assert result.table.column("n").to_pylist() == [5]
    wh.close()


def test_statistics_come_from_duckdbs_own_metadata(tmp_path):
    path = str(tmp_path / "stats.duckdb")
    with duckdb.connect(path) as con:
        con.execute(
            "CREATE TABLE sales AS SELECT range AS id, range % 40 AS shop, "
            "DATE '2024-01-01' + CAST(range % 366 AS INTEGER) AS day, "
            "CAST(range % 1000 AS DECIMAL(9, 2)) / 10 AS amount, 'x' || (range % 5) AS tag "
            "FROM range(20000)"
        )
        con.execute("CREATE VIEW big_sales AS SELECT * FROM sales WHERE amount > 50")
    stats = DuckDBSilo(name="wh", path=path).stats("sales")
    assert stats.rows == 20000
    cols = stats.columns
    assert (cols["id"].min, cols["id"].max) == (0, 19999)
    assert str(cols["day"].min) == "2024-01-01" and str(cols["day"].max) == "2024-12-31"
    assert cols["tag"].min is None  # text: DuckDB keeps only prefixes, no usable range
    # DuckDB's distinct estimates (HyperLogLog): near the truth, far from the row count.
    for column, truth in {"shop": 40, "day": 366, "tag": 5, "id": 20000}.items():
        assert truth / 2 <= cols[column].ndv <= truth * 2, (column, cols[column].ndv)
    view = DuckDBSilo(name="wh", path=path).stats("big_sales")
    assert all(c.ndv is None and c.min is None for c in view.columns.values())


def test_estimates_use_the_statistics(tmp_path):
    path = str(tmp_path / "stats.duckdb")
    with duckdb.connect(path) as con:
        con.execute(
            "CREATE TABLE sales AS SELECT range AS id, range % 40 AS shop FROM range(20000)"
        )
    wh = DuckDBSilo(name="wh", path=path)
    grouped = plan("SELECT shop, count(*) AS n FROM wh.sales GROUP BY shop", [wh])
    (fragment,) = grouped.fragments
    assert 20 <= fragment.estimate.rows <= 80  # 40 groups; without statistics, a guess
    ranged = plan("SELECT id FROM wh.sales WHERE id < 2000", [wh])
    assert 1000 <= ranged.fragments[0].estimate.rows <= 4000  # a tenth of the range


def test_plans_from_explain_are_read_for_groups_and_scans():
    from resources.silos._duckdb_stats import group_estimate, scans_table

    folded = '[{"name": "PROJECTION", "children": [{"name": "COLUMN_DATA_SCAN", "children": []}]}]'
    scanned = '[{"name": "UNGROUPED_AGGREGATE", "children": [{"name": "TABLE_SCAN"}]}]'
    grouped = (
        '[{"name": "PERFECT_HASH_GROUP_BY", "extra_info": {"Estimated Cardinality": "1,234"},'
        ' "children": [{"name": "SEQ_SCAN", "children": []}]}]'
    )
    assert not scans_table(folded)
    assert scans_table(scanned) and scans_table("not json")
    assert group_estimate(grouped) == 1234
    assert group_estimate(folded) is None and group_estimate("{") is None
