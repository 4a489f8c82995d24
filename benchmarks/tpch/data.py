"""TPC-H data for the federated benchmark: the tool venv, generation, placement and loading.

Generated Parquet is cached under ``benchmarks/out/sf<N>/tables/``; the SQLite and DuckDB silo
files beside it are built once per scale factor and set of tables. PostgreSQL is a
throwaway server, loaded afresh on every run (ADBC ingest, then keys, indexes and ANALYZE).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.tpch.layouts import TABLES
from tests.servers import TOOLS, Server

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "out"


# Primary keys as the TPC-H schema declares them, and the foreign-key columns a real deployment
# indexes (for joins and for semi-join reductions pushed into the silo).
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "lineitem": ("l_orderkey", "l_linenumber"),
    "orders": ("o_orderkey",),
    "partsupp": ("ps_partkey", "ps_suppkey"),
    "part": ("p_partkey",),
    "customer": ("c_custkey",),
    "supplier": ("s_suppkey",),
    "nation": ("n_nationkey",),
    "region": ("r_regionkey",),
}
FOREIGN_KEYS: dict[str, tuple[str, ...]] = {
    "lineitem": ("l_partkey", "l_suppkey"),
    "orders": ("o_custkey",),
    "partsupp": ("ps_suppkey",),
    "customer": ("c_nationkey",),
    "supplier": ("s_nationkey",),
    "nation": ("n_regionkey",),
}

# The peer's own virtualenv: DuckDB 2.x cannot install extensions offline, 1.5.5 has them on PyPI.
# tpchgen-cli (a Rust binary in a wheel) lives there too, out of the project's environment.
PEER_VENV = TOOLS / "duckdb155"
DUCKDB_PEER_VERSION = "v1.5.5"
PEER_PACKAGES = (
    "duckdb==1.5.5",
    "duckdb-extension-postgres-scanner==1.5.5",
    "duckdb-extension-sqlite-scanner==1.5.5",
    "tpchgen-cli==4.0.0",
    "pyarrow",
)
PEER_EXTENSIONS = ("postgres_scanner", "sqlite_scanner")
# Bump when the layout or loading of cached files changes, so stale caches are rebuilt.
CACHE_FORMAT = 1
# The SQLite file's own format: 2 declares 32-bit integers INT (read back as int32, as in Parquet).
SQLITE_FORMAT = 2


def sf_label(sf: float) -> str:
    """``0.1`` → ``"0.1"``, ``1.0`` → ``"1"``: the scale factor as written in folder names."""
    return f"{sf:g}"


def ensure_tools() -> Path:
    """Create ``.venv-tools/duckdb155`` (DuckDB 1.5.5 + scanners, tpchgen-cli) if missing."""
    python = PEER_VENV / "bin" / "python"
    if python.exists() and (PEER_VENV / "bin" / "tpchgen-cli").exists():
        return PEER_VENV / "bin"
    PEER_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return PEER_VENV / "bin"


def peer_extensions() -> list[str]:
    """Paths of the scanner extension files shipped in the peer venv's PyPI packages."""
    site = next((PEER_VENV / "lib").glob("python3*/site-packages"))
    paths = []
    for name in PEER_EXTENSIONS:
        path = (
            site
            / f"duckdb_extension_{name}"
            / "extensions"
            / DUCKDB_PEER_VERSION
            / f"{name}.duckdb_extension"
        )
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: delete {PEER_VENV} and rerun to reinstall")
        paths.append(str(path))
    return paths


def generate(sf: float, bindir: Path) -> tuple[Path, float | None]:
    """Parquet for all 8 tables at scale factor ``sf`` (cached); returns folder and seconds spent
    (None when the cache was used)."""
    folder = OUT / f"sf{sf_label(sf)}" / "tables"
    marker = folder / ".complete"
    if marker.exists():
        return folder, None
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run(
        [str(bindir / "tpchgen-cli"), "parquet", "-s", sf_label(sf), "-o", str(folder), "-q"],
        check=True,
    )
    marker.write_text(json.dumps({"sf": sf, "format": CACHE_FORMAT}))
    return folder, time.perf_counter() - started


def placed(placement: Mapping[str, str], silo: str) -> list[str]:
    """Tables ``placement`` puts in ``silo``, in TPC-H order."""
    return [t for t in TABLES if placement.get(t) == silo]


def build_lake(tables: Path, root: Path, names: list[str]) -> None:
    """A Parquet lake at ``root`` holding exactly ``names`` (hard links to the generated files)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name in names:
        source, target = tables / f"{name}.parquet", root / f"{name}.parquet"
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def build_duckdb(tables: Path, path: Path, names: list[str]) -> float | None:
    """``names`` as native tables of one DuckDB silo file (cached); seconds or None.

    Written by the peer venv's DuckDB 1.5.5 so that both it (ATTACH) and the project's newer
    DuckDB (which reads older storage) open the same file.
    """
    marker = path.with_suffix(".complete")
    if marker.exists() and path.exists() and json.loads(marker.read_text()).get("tables") == names:
        return None
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    statements = [
        f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{tables / f'{name}.parquet'}')"
        for name in names
    ]
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute('SET enable_progress_bar = false')\n"
        "for sql in json.loads(sys.argv[2]):\n"
        "    con.execute(sql)\n"
        "con.execute('CHECKPOINT')\n"
        "con.close()\n"
    )
    python = PEER_VENV / "bin" / "python"
    subprocess.run([str(python), "-c", script, str(path), json.dumps(statements)], check=True)
    marker.write_text(json.dumps({"format": CACHE_FORMAT, "tables": names}))
    return time.perf_counter() - started


def parquet_views(tables: Path) -> list[str]:
    """``CREATE VIEW`` statements naming every generated Parquet file by its table: the
    co-located baseline is DuckDB over the same files the lake serves."""
    return [
        f"CREATE VIEW {name} AS SELECT * FROM read_parquet("
        f"'{str(tables / f'{name}.parquet').replace(chr(39), chr(39) * 2)}')"
        for name in TABLES
    ]


def build_sqlite(tables: Path, path: Path, names: list[str]) -> float | None:
    """``names`` as tables of one SQLite file with keys and indexes (cached); seconds or None."""
    marker = path.with_suffix(".complete")
    if marker.exists() and json.loads(marker.read_text()) == {
        "format": SQLITE_FORMAT,
        "tables": names,
    }:
        return None
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    con = sqlite3.connect(path)
    try:
        for name in names:
            data = pq.read_table(tables / f"{name}.parquet")
            columns = ", ".join(f"{f.name} {_sqlite_type(f.type)}" for f in data.schema)
            keys = ", ".join(PRIMARY_KEYS[name])
            con.execute(f"CREATE TABLE {name} ({columns}, PRIMARY KEY ({keys}))")
            marks = ", ".join("?" for _ in data.schema)
            for batch in data.to_batches(100_000):
                values = [_sqlite_values(column) for column in batch.columns]
                con.executemany(f"INSERT INTO {name} VALUES ({marks})", zip(*values, strict=True))
            for column in FOREIGN_KEYS.get(name, ()):
                con.execute(f"CREATE INDEX {name}_{column} ON {name} ({column})")
        con.commit()
        con.execute("ANALYZE")
        con.commit()
    finally:
        con.close()
    marker.write_text(json.dumps({"format": SQLITE_FORMAT, "tables": names}))
    return time.perf_counter() - started


def load_postgres(tables: Path, server: Server, names: list[str]) -> float:
    """Load ``names`` into the throwaway server: typed DDL, ADBC ingest, keys, indexes, ANALYZE."""
    import adbc_driver_postgresql.dbapi as pg

    started = time.perf_counter()
    with pg.connect(postgres_uri(server)) as con, con.cursor() as cur:
        for name in names:
            data = pq.read_table(tables / f"{name}.parquet")
            data = data.cast(pa.schema([_plain(f) for f in data.schema]))
            columns = ", ".join(f"{f.name} {_pg_type(f.type)} NOT NULL" for f in data.schema)
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(f"CREATE TABLE {name} ({columns})")
            cur.adbc_ingest(name, data, mode="append")
            cur.execute(f"ALTER TABLE {name} ADD PRIMARY KEY ({', '.join(PRIMARY_KEYS[name])})")
            for column in FOREIGN_KEYS.get(name, ()):
                cur.execute(f"CREATE INDEX {name}_{column} ON {name} ({column})")
            con.commit()
        for name in names:
            cur.execute(f"ANALYZE {name}")
        con.commit()
    return time.perf_counter() - started


def postgres_settings(server: Server) -> dict:
    """PostgresSilo keyword arguments for ``server``."""
    env = server.env
    return {
        "host": env["FED_TEST_POSTGRES_HOST"],
        "port": int(env["FED_TEST_POSTGRES_PORT"]),
        "user": env["FED_TEST_POSTGRES_USER"],
        "password": env["FED_TEST_POSTGRES_PASSWORD"],
        "database": env["FED_TEST_POSTGRES_DATABASE"],
    }


def postgres_uri(server: Server) -> str:
    return "postgresql://{user}:{password}@{host}:{port}/{database}".format(
        **postgres_settings(server)
    )


def postgres_dsn(server: Server) -> str:
    """libpq key=value string (what DuckDB's postgres scanner ATTACHes)."""
    s = postgres_settings(server)
    return (
        f"host={s['host']} port={s['port']} user={s['user']} password={s['password']} "
        f"dbname={s['database']}"
    )


def _plain(field: pa.Field) -> pa.Field:
    """string_view (what tpchgen writes) as plain string, which every driver takes."""
    if pa.types.is_string_view(field.type) or pa.types.is_large_string(field.type):
        return pa.field(field.name, pa.string(), field.nullable)
    return pa.field(field.name, field.type, field.nullable)


def _pg_type(kind: pa.DataType) -> str:
    if pa.types.is_int64(kind):
        return "bigint"
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_decimal(kind):
        return f"numeric({kind.precision},{kind.scale})"
    if pa.types.is_date(kind):
        return "date"
    if pa.types.is_floating(kind):
        return "double precision"
    return "text"


def _sqlite_type(kind: pa.DataType) -> str:
    if pa.types.is_int32(kind):
        return "INT"
    if pa.types.is_integer(kind):
        return "INTEGER"
    if pa.types.is_decimal(kind):
        return f"DECIMAL({kind.precision},{kind.scale})"
    if pa.types.is_floating(kind):
        return "REAL"
    if pa.types.is_date(kind):
        return "DATE"
    return "TEXT"


def _sqlite_values(column: pa.Array) -> list:
    """Python values sqlite3 can bind: decimals as floats, dates as ISO text."""
    kind = column.type
    if pa.types.is_decimal(kind):
        column = column.cast(pa.float64())
    elif pa.types.is_date(kind) or pa.types.is_string_view(kind):
        column = column.cast(pa.string())
    return column.to_pylist()
