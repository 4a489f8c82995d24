"""Source-change sensor tick cost: 100 watched tables across five silo kinds, no data scanned.

Run by hand (not in CI): ``.venv/bin/python -m benchmarks.sensor_tick [--ticks N]``. Starts a
PostgreSQL server and a moto S3 server as the tests do, creates 40 PostgreSQL tables, 30 Parquet
tables on S3, 10 Delta tables, 10 SQLite tables and 10 DuckDB tables (1,000 rows each), and
twenty model assets downstream of them. Times the sensor's ticks as the daemon evaluates them
(baseline, quiet, and after changes in 10 tables), and shows from the silos' own records that no
table data was read: PostgreSQL's ``pg_stat_user_tables.seq_scan + idx_scan`` over the benchmark
tables before and after, and the S3 requests moto logged, by kind.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import boto3
import dagster as dg
import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import write_deltalake

from fed_assets.asset_graph import MODEL_ROLE, MODEL_ROLE_TAG
from fed_assets.catalog import Catalog
from fed_assets.definitions import build_definitions
from resources.silos.delta import DeltaSilo
from resources.silos.duckdb import DuckDBSilo
from resources.silos.parquet import ParquetSilo
from resources.silos.postgres import PostgresSilo
from resources.silos.sqlite import SQLiteSilo
from sensors.source_change import source_change_sensor
from tests.servers import start

# Tables per silo kind: 100 in all, PostgreSQL and S3 the most (the ones with per-table calls).
COUNTS = {"pg": 40, "s3": 30, "delta": 10, "sqlite": 10, "duckdb": 10}
ROWS = 1_000
# Each model depends on this many tables (spread across kinds), so every table has a model.
TABLES_PER_MODEL = 5
SCHEMA = "bench"
BUCKET = "bench-lake"
# moto's access log: "GET /bucket?list-type=2&... HTTP/1.1" 200 -
_REQUEST = re.compile(r'"(GET|PUT|HEAD|POST|DELETE) (/[^ ]*) HTTP')


def table(seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": np.arange(ROWS),
            "amount": rng.normal(100, 10, ROWS),
            "label": rng.integers(0, 2, ROWS),
        }
    )


def seed(root: Path, pg_env: dict, s3_env: dict) -> dict:
    """Create the 100 tables; return the silos."""
    with psycopg.connect(**_pg_connect(pg_env), autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {SCHEMA}")
        for i in range(COUNTS["pg"]):
            con.execute(
                f"CREATE TABLE {SCHEMA}.t{i} (id bigint primary key, amount float8, label int)"
            )
            con.execute(
                f"INSERT INTO {SCHEMA}.t{i} SELECT g, random() * 100, g % 2 "
                f"FROM generate_series(1, {ROWS}) g"
            )
        con.execute("ANALYZE")
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_env["FED_TEST_S3_ENDPOINT"],
        aws_access_key_id=s3_env["FED_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=s3_env["FED_TEST_S3_SECRET_KEY"],
        region_name=s3_env["FED_TEST_S3_REGION"],
    )
    s3.create_bucket(Bucket=BUCKET)
    fs = _s3fs(s3_env)
    for i in range(COUNTS["s3"]):
        pq.write_table(table(i), f"{BUCKET}/lake/t{i}/part-0.parquet", filesystem=fs)
    for i in range(COUNTS["delta"]):
        write_deltalake(str(root / "delta" / f"t{i}"), table(i))
    with sqlite3.connect(root / "store.sqlite") as con:
        for i in range(COUNTS["sqlite"]):
            con.execute(f"CREATE TABLE t{i} (id INTEGER, amount REAL, label INTEGER)")
            rows = [tuple(r.values()) for r in table(i).to_pylist()]
            con.executemany(f"INSERT INTO t{i} VALUES (?, ?, ?)", rows)
    with duckdb.connect(str(root / "wh.duckdb")) as con:
        for i in range(COUNTS["duckdb"]):
            data = table(i)  # noqa: F841 (read by DuckDB's replacement scan)
            con.execute(f"CREATE TABLE t{i} AS SELECT * FROM data")
    return {
        "pg": PostgresSilo(name="pg", schema=SCHEMA, **_pg_silo(pg_env)),
        "s3": ParquetSilo(name="s3", root=f"s3://{BUCKET}/lake", **_s3_silo(s3_env)),
        "delta": DeltaSilo(name="delta", root=str(root / "delta")),
        "sqlite": SQLiteSilo(name="sqlite", path=str(root / "store.sqlite")),
        "duckdb": DuckDBSilo(name="duckdb", path=str(root / "wh.duckdb")),
    }


def models(catalog: Catalog) -> list[dg.AssetsDefinition]:
    """Twenty stand-in models, each on five tables of different kinds."""
    keys = [t.asset_key for t in catalog.tables()]
    rng = np.random.default_rng(3)
    out = []
    for m in range(len(keys) // TABLES_PER_MODEL):
        deps = [keys[i] for i in rng.choice(len(keys), TABLES_PER_MODEL, replace=False)]

        @dg.asset(name=f"model_{m}", deps=deps, tags={MODEL_ROLE_TAG: MODEL_ROLE})
        def _model() -> None: ...

        out.append(_model)
    return out


def change_ten(root: Path, pg_env: dict, s3_env: dict) -> None:
    """Five PostgreSQL inserts and five new S3 files."""
    with psycopg.connect(**_pg_connect(pg_env), autocommit=True) as con:
        for i in range(5):
            con.execute(f"INSERT INTO {SCHEMA}.t{i} VALUES ({ROWS + 1}, 1.0, 1)")
        con.execute("SELECT pg_stat_force_next_flush()")
    fs = _s3fs(s3_env)
    for i in range(5):
        pq.write_table(table(100 + i), f"{BUCKET}/lake/t{i}/part-1.parquet", filesystem=fs)


def pg_scans(pg_env: dict) -> tuple[int, int]:
    """seq_scan and idx_scan summed over the benchmark tables (after the readers flushed)."""
    time.sleep(1.5)  # backends flush their counters when idle for a second
    with psycopg.connect(**_pg_connect(pg_env)) as con:
        con.execute("SELECT pg_stat_clear_snapshot()")
        row = con.execute(
            "SELECT sum(seq_scan)::bigint, sum(coalesce(idx_scan, 0))::bigint "
            "FROM pg_stat_user_tables WHERE schemaname = %s",
            (SCHEMA,),
        ).fetchone()
    return int(row[0]), int(row[1])


def s3_requests(log: Path, start_at: int) -> Counter:
    """S3 requests moto logged after byte ``start_at`` of its log, by kind."""
    text = log.read_bytes()[start_at:].decode(errors="replace")
    kinds: Counter = Counter()
    for method, path in _REQUEST.findall(text):
        if "/moto-api" in path:
            continue
        if method == "GET" and "list-type=2" in path:
            kinds["ListObjectsV2"] += 1
        elif method == "GET" and path.rstrip("/").count("/") <= 1 and "?" in path:
            kinds["bucket GET (listing)"] += 1
        elif method == "GET":
            kinds["GetObject"] += 1
        elif method == "HEAD":
            kinds["HeadObject"] += 1
        else:
            kinds[method] += 1
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ticks", type=int, default=10, help="quiet ticks to time")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sensor-tick-"))
    pg = start("postgres", root / "pg")
    s3 = start("s3", root / "s3")
    try:
        silos = seed(root, pg.env, s3.env)
        catalog = Catalog(silos, root / "catalog.json")
        watched = sum(1 for _ in catalog.tables())
        sensor = source_change_sensor(catalog)
        defs = build_definitions(
            catalog,
            results_base_path=str(root / "results"),
            assets=models(catalog),
            sensors=[sensor],
        )
        repo = defs.get_repository_def()
        log = root / "s3" / "moto.log"
        with dg.instance_for_test() as instance:

            def tick(cursor):
                with dg.build_sensor_context(
                    instance=instance, cursor=cursor, repository_def=repo, resources=silos
                ) as context:
                    began = time.perf_counter()
                    data = sensor.evaluate_tick(context)
                    return data, time.perf_counter() - began

            scans_before = pg_scans(pg.env)
            log_at = log.stat().st_size
            first, baseline_s = tick(None)
            quiet = []
            cursor = first.cursor
            for _ in range(args.ticks):
                data, seconds = tick(cursor)
                assert not data.run_requests, "a quiet tick requested runs"
                quiet.append(seconds)
                cursor = data.cursor
            scans_quiet = pg_scans(pg.env)
            quiet_requests = s3_requests(log, log_at)
            change_ten(root, pg.env, s3.env)
            time.sleep(1.5)  # the writers' counters reach pg_stat_user_tables
            scans_changed_before = pg_scans(pg.env)
            log_at = log.stat().st_size
            changed, changed_s = tick(cursor)
            scans_after = pg_scans(pg.env)
            changed_requests = s3_requests(log, log_at)
        print(f"\n{watched} watched tables: " + ", ".join(f"{k} {v}" for k, v in COUNTS.items()))
        print(f"{len(repo.asset_graph.get_all_asset_keys()) - watched} model assets downstream\n")
        print(
            "| tick | seconds | runs requested | PostgreSQL seq_scan + idx_scan on the tables | S3 requests |"
        )
        print("|---|---:|---:|---|---|")
        print(
            f"| baseline + {args.ticks} quiet (median of quiet) | {statistics.median(quiet):.3f} "
            f"(baseline {baseline_s:.3f}, max {max(quiet):.3f}) | 0 | "
            f"{sum(scans_before)} → {sum(scans_quiet)} | {_shown(quiet_requests)} |"
        )
        print(
            f"| after 10 tables changed | {changed_s:.3f} | {len(changed.run_requests)} | "
            f"{sum(scans_changed_before)} → {sum(scans_after)} | {_shown(changed_requests)} |"
        )
    finally:
        s3.stop()
        pg.stop()


def _shown(requests: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(requests.items())) or "none"


def _pg_connect(env: dict) -> dict:
    return {
        "host": env["FED_TEST_POSTGRES_HOST"],
        "port": int(env["FED_TEST_POSTGRES_PORT"]),
        "user": env["FED_TEST_POSTGRES_USER"],
        "password": env["FED_TEST_POSTGRES_PASSWORD"],
        "dbname": env["FED_TEST_POSTGRES_DATABASE"],
    }


def _pg_silo(env: dict) -> dict:
    settings = _pg_connect(env)
    settings["database"] = settings.pop("dbname")
    return settings


def _s3_silo(env: dict) -> dict:
    return {
        "s3_endpoint_url": env["FED_TEST_S3_ENDPOINT"],
        "s3_access_key_id": env["FED_TEST_S3_ACCESS_KEY"],
        "s3_secret_access_key": env["FED_TEST_S3_SECRET_KEY"],
        "s3_region": env["FED_TEST_S3_REGION"],
    }


def _s3fs(env: dict) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=env["FED_TEST_S3_ENDPOINT"].split("://", 1)[1],
        scheme="http",
        access_key=env["FED_TEST_S3_ACCESS_KEY"],
        secret_key=env["FED_TEST_S3_SECRET_KEY"],
        region=env["FED_TEST_S3_REGION"],
    )


if __name__ == "__main__":
    main()
