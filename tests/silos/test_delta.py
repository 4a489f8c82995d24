"""Delta silo: partitions, pruning, log-only stats and versions, broken tables, local and on S3."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from fed_assets.errors import CorruptDataError, EmptyTableError, UnknownTableError
from resources.silos.delta import DeltaSilo
from tests.silos.cases.delta import delta_storage_options
from tests.silos.cases.parquet import fresh_bucket, s3_settings
from tests.silos.contract import NEW_ROW, PEOPLE
from tests.silos.test_parquet import count_opens

MONTHS = ("2025-01", "2025-02", "2025-03")


def payments() -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(1, 7), pa.int64()),
            "amount": [0.0, 5.0, 10.0, 15.0, 20.0, 25.0],
            "month": [m for m in MONTHS for _ in range(2)],
        }
    )


@pytest.fixture
def lakehouse(tmp_path) -> Path:
    root = tmp_path / "delta"
    write_deltalake(str(root / "payments"), payments(), partition_by=["month"])
    write_deltalake(str(root / "people"), PEOPLE.slice(0, 3))
    write_deltalake(str(root / "people"), PEOPLE.slice(3), mode="append")
    (root / "plain_folder").mkdir()
    pq.write_table(PEOPLE, root / "plain_folder" / "x.parquet")
    return root


def test_tables_are_folders_with_a_delta_log(lakehouse):
    silo = DeltaSilo(name="lh", root=str(lakehouse))
    assert silo.tables() == ["payments", "people"]


def test_partition_column_is_a_column_and_prunes_files(lakehouse, monkeypatch):
    handler = count_opens(monkeypatch, DeltaSilo)
    silo = DeltaSilo(name="lh", root=str(lakehouse))
    assert silo.schema("payments").names == ["id", "amount", "month"]

    silo.read("payments").read_all()
    assert {Path(p).parent.name for p in handler.opened} == {f"month={m}" for m in MONTHS}

    handler.opened.clear()
    table = silo.read("payments", columns=["id", "month"], where="month = '2025-02'").read_all()
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 3, "month": "2025-02"},
        {"id": 4, "month": "2025-02"},
    ]
    # The Delta log gives the schema, so only the matching partition's file is opened.
    assert {Path(p).parent.name for p in handler.opened} == {"month=2025-02"}


def test_stats_come_from_the_log_without_opening_data(lakehouse, monkeypatch):
    handler = count_opens(monkeypatch, DeltaSilo)
    silo = DeltaSilo(name="lh", root=str(lakehouse))
    stats = silo.stats("people")
    assert handler.opened == []
    sizes = sum(f.stat().st_size for f in (lakehouse / "people").glob("*.parquet"))
    assert (stats.rows, stats.bytes, stats.exact) == (5, sizes, True)
    assert (stats.columns["id"].min, stats.columns["id"].max) == (1, 5)
    assert stats.columns["amount"].null_count == 1
    assert stats.columns["joined"].min == dt.datetime(2024, 1, 1, 9, 30)


def test_version_is_the_highest_commit(lakehouse):
    silo = DeltaSilo(name="lh", root=str(lakehouse))
    first = silo.version("people")
    assert first.fingerprint == "1" and first.method == "metadata"
    assert "00000000000000000001.json" in first.detail
    silo.read("people").read_all()
    assert silo.version("people") == first
    write_deltalake(
        str(lakehouse / "people"),
        pa.Table.from_pylist([NEW_ROW], schema=PEOPLE.schema),
        mode="append",
    )
    assert silo.version("people").fingerprint == "2"
    assert silo.version("people").fingerprint == str(
        DeltaTable(str(lakehouse / "people")).version()
    )


def test_corrupt_data_file_is_named(lakehouse):
    silo = DeltaSilo(name="lh", root=str(lakehouse))
    victim = sorted((lakehouse / "people").glob("*.parquet"))[0]
    victim.write_bytes(b"PAR1 definitely not parquet")
    with pytest.raises(CorruptDataError) as info:
        silo.read("people").read_all()
    message = str(info.value)
    assert "'lh'" in message and "'people'" in message and victim.name in message
    assert "rewrite" in message


def test_corrupt_log_is_named(lakehouse):
    silo = DeltaSilo(name="lh", root=str(lakehouse))
    (lakehouse / "people" / "_delta_log" / "00000000000000000001.json").write_text("{not json")
    with pytest.raises(
        CorruptDataError, match="'people', file .*00000000000000000001.json.*Delta log"
    ):
        silo.schema("people")


def test_log_without_commits_is_an_empty_table(lakehouse):
    (lakehouse / "half_created" / "_delta_log").mkdir(parents=True)
    silo = DeltaSilo(name="lh", root=str(lakehouse))
    assert "half_created" in silo.tables()
    for action in (silo.schema, silo.stats, silo.version, lambda t: silo.read(t).read_all()):
        with pytest.raises(EmptyTableError, match="'half_created'.*no commits"):
            action("half_created")


def test_folder_without_log_is_not_a_table(lakehouse):
    silo = DeltaSilo(name="lh", root=str(lakehouse))
    with pytest.raises(UnknownTableError, match="plain_folder"):
        silo.read("plain_folder")


def test_s3_partitions_stats_and_version(server_env):
    env = server_env("s3")
    bucket = fresh_bucket(env)
    options = delta_storage_options(env)
    uri = f"s3://{bucket}/delta/payments"
    write_deltalake(uri, payments(), partition_by=["month"], storage_options=options)
    silo = DeltaSilo(name="s3lh", root=f"s3://{bucket}/delta", **s3_settings(env))

    assert silo.tables() == ["payments"]
    table = silo.read("payments", where="month = '2025-03'").read_all()
    assert sorted(table.column("id").to_pylist()) == [5, 6]
    assert silo.stats("payments").rows == 6
    assert silo.version("payments").fingerprint == "0"
    write_deltalake(uri, payments().slice(0, 1), mode="append", storage_options=options)
    assert silo.version("payments").fingerprint == "1"
    assert silo.stats("payments").rows == 7
