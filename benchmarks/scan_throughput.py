"""Scan throughput per silo kind: stream a table of N rows (default 1 M × 8 columns) as Arrow.

Run by hand (not in CI): ``.venv/bin/python -m benchmarks.scan_throughput [--rows N] [--kinds a,b]``.
Servers (PostgreSQL, S3, Snowflake and BigQuery emulators) are started as for the tests. Prints a
Markdown table: rows/s and MB/s of Arrow data delivered by ``silo.read(table)``, batches, and the
peak batch size (a scan must stream, never hold the table whole).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fed_assets.silo import SiloResource
from tests.servers import start

KINDS = ["duckdb", "sqlite", "parquet", "parquet_s3", "delta", "postgres", "snowflake", "bigquery"]


def make_table(rows: int) -> pa.Table:
    """A deterministic payments-like table: 8 columns, ~60 bytes a row in Arrow."""
    rng = np.random.default_rng(1)
    return pa.table(
        {
            "txn_id": pa.array(np.arange(rows), pa.int64()),
            "customer_id": pa.array(rng.integers(1, 100_000, rows), pa.int64()),
            "amount": rng.lognormal(4, 1, rows).round(2),
            "currency": pa.array(rng.choice(["EUR", "USD", "GBP"], rows)),
            "country": pa.array(rng.choice(["DE", "FR", "US", "GB", "NL"], rows)),
            "booked_at": pa.array(
                np.datetime64("2025-01-01")
                + rng.integers(0, 365 * 86400, rows).astype("timedelta64[s]"),
                pa.timestamp("us"),
            ),
            "settled": pa.array(rng.random(rows) < 0.9),
            "channel": pa.array(rng.choice(["card", "wire", "cash", "direct_debit"], rows)),
        }
    )


# Each loader writes ``table`` as ``payments`` into a fresh silo of its kind and returns it.
def load_duckdb(table: pa.Table, work: Path, servers: dict) -> SiloResource:
    from resources.silos.duckdb import DuckDBSilo

    path = work / "bench.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("src", table)
        con.execute("CREATE TABLE payments AS SELECT * FROM src")
    return DuckDBSilo(name="duckdb", path=str(path))


def load_sqlite(table: pa.Table, work: Path, servers: dict) -> SiloResource:
    from resources.silos.sqlite import SQLiteSilo

    path = work / "bench.sqlite"
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE payments (txn_id INTEGER, customer_id INTEGER, amount REAL, currency TEXT,"
            " country TEXT, booked_at TIMESTAMP, settled BOOLEAN, channel TEXT)"
        )
        for batch in table.to_batches(100_000):
            cols = [c.to_pylist() for c in batch.columns]
            cols[5] = [v.isoformat(sep=" ") for v in cols[5]]
            con.executemany(
                "INSERT INTO payments VALUES (?,?,?,?,?,?,?,?)", zip(*cols, strict=True)
            )
    con.close()
    return SQLiteSilo(name="sqlite", path=str(path))


def load_parquet(table: pa.Table, work: Path, servers: dict) -> SiloResource:
    from resources.silos.parquet import ParquetSilo

    (work / "lake" / "payments").mkdir(parents=True)
    pq.write_table(table, work / "lake" / "payments" / "part-0.parquet", row_group_size=128_000)
    return ParquetSilo(name="parquet", root=str(work / "lake"))


def _s3(servers: dict, work: Path) -> dict:
    if "s3" not in servers:
        servers["s3"] = start("s3", work / "s3-server")
    return servers["s3"].env


def load_parquet_s3(table: pa.Table, work: Path, servers: dict) -> SiloResource:
    import boto3

    from resources.silos.parquet import ParquetSilo

    env = _s3(servers, work)
    settings = dict(
        s3_endpoint_url=env["FED_TEST_S3_ENDPOINT"],
        s3_region=env["FED_TEST_S3_REGION"],
        s3_access_key_id=env["FED_TEST_S3_ACCESS_KEY"],
        s3_secret_access_key=env["FED_TEST_S3_SECRET_KEY"],
    )
    boto3.client(
        "s3",
        endpoint_url=settings["s3_endpoint_url"],
        region_name=settings["s3_region"],
        aws_access_key_id=settings["s3_access_key_id"],
        aws_secret_access_key=settings["s3_secret_access_key"],
    ).create_bucket(Bucket="bench")
    silo = ParquetSilo(name="parquet_s3", root="s3://bench/lake", **settings)
    fs = silo.location.filesystem
    pq.write_table(
        table, "bench/lake/payments/part-0.parquet", filesystem=fs, row_group_size=128_000
    )
    return silo


def load_delta(table: pa.Table, work: Path, servers: dict) -> SiloResource:
    from deltalake import write_deltalake

    from resources.silos.delta import DeltaSilo

    write_deltalake(str(work / "delta" / "payments"), table)
    return DeltaSilo(name="delta", root=str(work / "delta"))


def load_postgres(table: pa.Table, work: Path, servers: dict) -> SiloResource:
    import adbc_driver_postgresql.dbapi as pg

    from resources.silos.postgres import PostgresSilo

    if "postgres" not in servers:
        servers["postgres"] = start("postgres", work / "pg-server")
    env = servers["postgres"].env
    settings = dict(
        host=env["FED_TEST_POSTGRES_HOST"],
        port=int(env["FED_TEST_POSTGRES_PORT"]),
        user=env["FED_TEST_POSTGRES_USER"],
        password=env["FED_TEST_POSTGRES_PASSWORD"],
        database=env["FED_TEST_POSTGRES_DATABASE"],
    )
    uri = "postgresql://{user}:{password}@{host}:{port}/{database}".format(**settings)
    with pg.connect(uri) as con, con.cursor() as cur:
        cur.adbc_ingest("payments", table, mode="replace")
        con.commit()
        cur.execute("ANALYZE payments")
        con.commit()
    return PostgresSilo(name="postgres", **settings)


def _server(kind: str, servers: dict, work: Path) -> dict:
    if kind not in servers:
        servers[kind] = start(kind, work / f"{kind}-server")
    return servers[kind].env


def load_snowflake(table: pa.Table, work: Path, servers: dict) -> SiloResource:
    """Into the fakesnow emulator with the connector's write_pandas (its bulk path)."""
    from tests.silos.cases.snowflake import connect, silo_for

    env = _server("snowflake", servers, work)
    with connect(env, "BENCH") as con:
        con.cursor().execute("CREATE DATABASE IF NOT EXISTS BENCH")
    with connect(env, "BENCH") as con:
        con.cursor().execute(
            'CREATE OR REPLACE TABLE "payments" ("txn_id" BIGINT, "customer_id" BIGINT, '
            '"amount" DOUBLE, "currency" TEXT, "country" TEXT, "booked_at" TIMESTAMP_NTZ, '
            '"settled" BOOLEAN, "channel" TEXT)'
        )
        # fakesnow's server has no stages (write_pandas' PUT) and row INSERTs run ~900 rows/s,
        # so 1,000 rows go in and the table doubles in SQL up to N (same columns and value
        # distribution as the other kinds; rows repeat with new ids).
        seed = min(1_000, table.num_rows)
        cursor = con.cursor()
        cursor.executemany(
            'INSERT INTO "payments" VALUES (%s, %s, %s, %s, %s, %s, %s, %s)',
            [tuple(r.values()) for r in table.slice(0, seed).to_pylist()],
        )
        have = seed
        while have < table.num_rows:
            cursor.execute(
                f'INSERT INTO "payments" SELECT "txn_id" + {have}, "customer_id", "amount", '
                f'"currency", "country", "booked_at", "settled", "channel" FROM "payments"'
            )
            have *= 2
        cursor.execute(f'DELETE FROM "payments" WHERE "txn_id" >= {table.num_rows}')
    return silo_for(env, "BENCH", name="snowflake", network_timeout_s=120)


def load_bigquery(table: pa.Table, work: Path, servers: dict) -> SiloResource:
    """Into the bqemulator with a Parquet load job; read back through Storage Read."""
    from tests.silos.cases.bigquery import bigquery_client, emulator_silo, load_table

    env = _server("bigquery", servers, work)
    client = bigquery_client(env)
    client.create_dataset("bench", exists_ok=True)
    client.create_dataset("bench_scratch", exists_ok=True)
    schema = [
        ("txn_id", "INT64"),
        ("customer_id", "INT64"),
        ("amount", "FLOAT64"),
        ("currency", "STRING"),
        ("country", "STRING"),
        ("booked_at", "DATETIME"),
        ("settled", "BOOL"),
        ("channel", "STRING"),
    ]
    load_table(client, f"{env['FED_TEST_BIGQUERY_PROJECT']}.bench.payments", table, schema=schema)
    return emulator_silo(env, "bench", name="bigquery")


LOADERS: dict[str, Callable[[pa.Table, Path, dict], SiloResource]] = {
    "duckdb": load_duckdb,
    "sqlite": load_sqlite,
    "parquet": load_parquet,
    "parquet_s3": load_parquet_s3,
    "delta": load_delta,
    "postgres": load_postgres,
    "snowflake": load_snowflake,
    "bigquery": load_bigquery,
}


def measure(silo: SiloResource, rows: int, repeats: int) -> dict:
    best = None
    for _ in range(repeats):
        started = time.perf_counter()
        n = nbytes = batches = peak = 0
        for batch in silo.read("payments"):
            n += batch.num_rows
            nbytes += batch.nbytes
            batches += 1
            peak = max(peak, batch.num_rows)
        seconds = time.perf_counter() - started
        assert n == rows, f"{silo.name}: read {n} rows, expected {rows}"
        if best is None or seconds < best["seconds"]:
            best = {"seconds": seconds, "bytes": nbytes, "batches": batches, "peak": peak}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kinds", default=",".join(LOADERS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = make_table(args.rows)
    servers: dict = {}
    lines = [
        f"Scan throughput, {args.rows:,} rows × {table.num_columns} columns "
        f"({table.nbytes / 1e6:.0f} MB as Arrow), best of {args.repeats}",
        "",
        "| silo kind | load s | scan s | rows/s | MB/s | batches | largest batch (rows) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in args.kinds.split(","):
                work = Path(tmp) / kind
                work.mkdir()
                t0 = time.perf_counter()
                silo = LOADERS[kind](table, work, servers)
                load = time.perf_counter() - t0
                m = measure(silo, args.rows, args.repeats)
                lines.append(
                    f"| {kind} | {load:.1f} | {m['seconds']:.2f} | {args.rows / m['seconds']:,.0f} | "
                    f"{m['bytes'] / 1e6 / m['seconds']:,.0f} | {m['batches']} | {m['peak']:,} |"
                )
                print(lines[-1], flush=True)
    finally:
        for server in servers.values():
            server.stop()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
