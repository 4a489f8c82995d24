"""The DuckDB-attach peer: run TPC-H over the silos with DuckDB 1.5.5's own federation.

Run by the peer virtualenv's Python (``.venv-tools/duckdb155``), not the project's: it imports
nothing from the project. Reads a JSON config on stdin::

    {"extensions": [paths], "postgres": "<libpq dsn>", "sqlite": path, "duckdb": path,
     "lake": {"lineitem": path, ...}, "out": folder, "repeats": 3, "timeout_s": 600,
     "queries": [{"name": "Q01", "sql": "..."}]}

PostgreSQL is ATTACHed with the postgres scanner as ``pg``, the SQLite file with the sqlite
scanner as ``ref``, the DuckDB file natively as ``wh``, and each lake table is a view ``lake.<table>`` over ``read_parquet``. Each
query runs once cold (timed as ``first``), then ``repeats`` times; the best of those is kept.
Results go to ``<out>/<name>.parquet``, timings to ``<out>/timings.json`` as ``{name:
{"seconds": s, "first": s} or {"error": text}}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import duckdb
import pyarrow.parquet as pq


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(config: dict) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for path in config["extensions"]:
        con.execute(f"LOAD {_quote(path)}")
    con.execute(f"ATTACH {_quote(config['postgres'])} AS pg (TYPE postgres, READ_ONLY)")
    con.execute(f"ATTACH {_quote(config['sqlite'])} AS ref (TYPE sqlite, READ_ONLY)")
    if config.get("duckdb"):
        con.execute(f"ATTACH {_quote(config['duckdb'])} AS wh (READ_ONLY)")
    con.execute("CREATE SCHEMA lake")
    for name, path in config["lake"].items():
        con.execute(f"CREATE VIEW lake.{name} AS SELECT * FROM read_parquet({_quote(path)})")
    return con


def run(con: duckdb.DuckDBPyConnection, sql: str, timeout_s: float):
    """The result of ``sql`` as an Arrow table; interrupted after ``timeout_s``."""
    timer = threading.Timer(timeout_s, con.interrupt)
    timer.start()
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        timer.cancel()


def main() -> None:
    config = json.load(sys.stdin)
    timings: dict[str, dict] = {}
    out = config["out"]
    try:
        con = connect(config)
    except Exception as err:
        error = f"attach failed: {type(err).__name__}: {err}"
        timings = {q["name"]: {"error": error} for q in config["queries"]}
        con = None
    for query in config["queries"] if con is not None else []:
        name = query["name"]
        try:
            started = time.perf_counter()
            result = run(con, query["sql"], config["timeout_s"])  # cold
            first = time.perf_counter() - started
            best = None
            for _ in range(config["repeats"]):
                started = time.perf_counter()
                result = run(con, query["sql"], config["timeout_s"])
                seconds = time.perf_counter() - started
                best = seconds if best is None else min(best, seconds)
            pq.write_table(result, f"{out}/{name}.parquet")
            timings[name] = {"seconds": best, "first": first}
        except Exception as err:
            text = str(err).strip().splitlines()[0] if str(err).strip() else ""
            timings[name] = {"error": f"{type(err).__name__}: {text}"}
        print(f"peer {name}: {timings[name]}", file=sys.stderr, flush=True)
    with open(f"{out}/timings.json", "w") as f:
        json.dump(timings, f)


if __name__ == "__main__":
    main()
