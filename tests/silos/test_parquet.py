"""Parquet silo: partitions, pruning, footers, fingerprints and storage errors, local and on S3."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from fed_assets.errors import (
    ConfigurationError,
    CorruptDataError,
    EmptyTableError,
    SiloAuthError,
    SiloQueryError,
    SiloUnreachableError,
)
from resources.silos._files import Location
from resources.silos.parquet import ParquetSilo
from tests.servers import free_port
from tests.servers import s3 as s3_server
from tests.silos.cases.parquet import fresh_bucket, s3_filesystem, s3_settings
from tests.silos.contract import PEOPLE

MONTHS = ("2025-01", "2025-02", "2025-03")


class CountingHandler(pafs.FileSystemHandler):
    """A pass-through filesystem that records every file opened for reading."""

    def __init__(self, inner: pafs.FileSystem):
        self.inner = inner
        self.opened: list[str] = []

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def get_type_name(self):
        return "counting"

    def normalize_path(self, path):
        return self.inner.normalize_path(path)

    def get_file_info(self, paths):
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.inner.get_file_info(selector)

    def open_input_stream(self, path):
        self.opened.append(path)
        return self.inner.open_input_stream(path)

    def open_input_file(self, path):
        self.opened.append(path)
        return self.inner.open_input_file(path)

    def _read_only(self, *args, **kwargs):
        raise AssertionError("the silo must not write")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _read_only
    delete_file = move = copy_file = open_output_stream = open_append_stream = _read_only


def count_opens(monkeypatch, silo_class) -> CountingHandler:
    """Make every local silo of ``silo_class`` read through a ``CountingHandler``."""
    handler = CountingHandler(pafs.LocalFileSystem())

    def open_location(self):
        base = str(Path(self.root).resolve())
        return Location(pafs.PyFileSystem(handler), base, "file")

    monkeypatch.setattr(silo_class, "_open_location", open_location)
    return handler


def write_payments(fs: pafs.FileSystem, base: str) -> None:
    """``payments/month=YYYY-MM/part-0.parquet``: two rows per month, month only in the path."""
    for i, month in enumerate(MONTHS):
        rows = pa.table({"id": [2 * i + 1, 2 * i + 2], "amount": [10.0 * i, 10.0 * i + 5]})
        fs.create_dir(f"{base}/payments/month={month}", recursive=True)
        pq.write_table(rows, f"{base}/payments/month={month}/part-0.parquet", filesystem=fs)


@pytest.fixture
def lake(tmp_path) -> Path:
    root = tmp_path / "lake"
    write_payments(pafs.LocalFileSystem(), str(root))
    (root / "people").mkdir()
    pq.write_table(PEOPLE.slice(0, 3), root / "people" / "part-0.parquet")
    pq.write_table(PEOPLE.slice(3), root / "people" / "part-1.parquet")
    (root / "people" / "_SUCCESS").write_bytes(b"")
    pq.write_table(PEOPLE, root / "single.parquet")
    (root / "notes.txt").write_text("not a table")
    return root


def test_tables_are_folders_and_parquet_files(lake):
    silo = ParquetSilo(name="lake", root=str(lake))
    assert silo.tables() == ["payments", "people", "single"]
    assert silo.read("single").read_all().num_rows == 5


def test_hive_partitions_become_columns(lake):
    silo = ParquetSilo(name="lake", root=str(lake))
    assert silo.schema("payments").names == ["id", "amount", "month"]
    table = silo.read("payments", columns=["id", "month"], where="month = '2025-02'").read_all()
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 3, "month": "2025-02"},
        {"id": 4, "month": "2025-02"},
    ]


def test_partition_filter_opens_only_that_partition(lake):
    silo = ParquetSilo(name="lake", root=str(lake))
    # Corrupt February: a scan that opened it would fail, so success proves it was pruned.
    (february,) = (lake / "payments" / "month=2025-02").glob("*.parquet")
    february.write_bytes(b"PAR1 this is not a parquet file PAR1")
    table = silo.read("payments", where="month = '2025-03'").read_all()
    assert table.num_rows == 2
    with pytest.raises(CorruptDataError, match="month=2025-02"):
        silo.read("payments").read_all()


def test_stats_come_from_footers(lake):
    silo = ParquetSilo(name="lake", root=str(lake))
    stats = silo.stats("people")
    files = [lake / "people" / "part-0.parquet", lake / "people" / "part-1.parquet"]
    assert stats.rows == 5 and stats.exact
    assert stats.bytes == sum(f.stat().st_size for f in files)  # _SUCCESS is not data
    assert (stats.columns["id"].min, stats.columns["id"].max) == (1, 5)
    assert stats.columns["name"].null_count == 1
    assert stats.columns["joined"].max == dt.datetime(2024, 4, 1)
    assert silo.stats("payments").rows == 6


def test_corrupt_file_is_named(lake):
    (lake / "people" / "part-2.parquet").write_bytes(b"PAR1 this is not parquet")
    silo = ParquetSilo(name="lake", root=str(lake))
    for action in (lambda: silo.read("people").read_all(), lambda: silo.stats("people")):
        with pytest.raises(CorruptDataError) as info:
            action()
        message = str(info.value)
        assert "'lake'" in message and "'people'" in message
        assert str(lake / "people" / "part-2.parquet") in message
        assert "rewrite" in message and "remove" in message


def test_corrupt_first_file_fails_schema_with_its_name(lake):
    (lake / "people" / "part-0.parquet").write_bytes(b"garbage")
    silo = ParquetSilo(name="lake", root=str(lake))
    with pytest.raises(CorruptDataError, match="part-0.parquet"):
        silo.schema("people")


def test_folder_without_parquet_files_is_an_empty_table(lake):
    (lake / "empty" / "_temporary").mkdir(parents=True)
    silo = ParquetSilo(name="lake", root=str(lake))
    assert "empty" in silo.tables()
    for action in (silo.schema, silo.stats, lambda t: silo.read(t).read_all()):
        with pytest.raises(EmptyTableError, match="'empty'.*no Parquet files"):
            action("empty")


def test_version_reads_the_listing_and_follows_changes(lake):
    silo = ParquetSilo(name="lake", root=str(lake))
    first = silo.version("people")
    silo.read("people").read_all()
    assert silo.version("people") == first
    assert first.method == "metadata" and "2 files" in first.detail
    # Rewriting a file in place (same name, same size) still changes the fingerprint.
    target = lake / "people" / "part-1.parquet"
    pq.write_table(PEOPLE.slice(3), target)
    assert silo.version("people").fingerprint != first.fingerprint
    # Another table's change does not.
    before = silo.version("people")
    pq.write_table(PEOPLE, lake / "single.parquet")
    assert silo.version("people") == before


def test_queries_cannot_read_outside_the_silo(lake, tmp_path):
    silo = ParquetSilo(name="lake", root=str(lake))
    outside = tmp_path / "outside.parquet"
    pq.write_table(PEOPLE, outside)
    for path in (outside, lake / "single.parquet"):  # table functions are refused everywhere
        with pytest.raises(SiloQueryError, match="lake"):
            silo.scan(f"SELECT * FROM read_parquet('{path}')").read_all()
    with pytest.raises(SiloQueryError):
        silo.scan(f"SELECT * FROM people, read_csv('{outside}')").read_all()


def test_join_and_qualified_names_in_one_scan(lake):
    silo = ParquetSilo(name="lake", root=str(lake))
    sql = (
        "SELECT p.name, SUM(x.amount) AS total FROM lake.people AS p "
        "JOIN payments AS x ON p.id = x.id WHERE x.month <> '2025-03' GROUP BY p.name"
    )
    table = silo.scan(sql).read_all()
    assert table.num_rows == 4


def test_missing_root_says_what_to_fix(tmp_path):
    silo = ParquetSilo(name="lake", root=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigurationError, match="does not exist.*root"):
        silo.tables()


def test_unsupported_scheme_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="scheme 'ftp'"):
        ParquetSilo(name="lake", root="ftp://host/lake").tables()


# ----------------------------------------------------------------------------------- S3 (moto)
def test_s3_partitions_stats_and_version(server_env):
    env = server_env("s3")
    bucket = fresh_bucket(env)
    fs = s3_filesystem(env)
    write_payments(fs, f"{bucket}/lake")
    silo = ParquetSilo(name="s3lake", root=f"s3://{bucket}/lake", **s3_settings(env))

    assert silo.tables() == ["payments"]
    assert silo.schema("payments").names == ["id", "amount", "month"]
    table = silo.read("payments", where="month = '2025-01'").read_all()
    assert sorted(table.column("id").to_pylist()) == [1, 2]
    assert silo.stats("payments").rows == 6

    first = silo.version("payments")
    assert "ETag" in first.detail and "3 objects" in first.detail
    assert silo.version("payments") == first
    # Same key, same size, different bytes: the ETag changes, so does the fingerprint.
    path = f"{bucket}/lake/payments/month=2025-01/part-0.parquet"
    pq.write_table(pa.table({"id": [1, 2], "amount": [7.0, 8.0]}), path, filesystem=fs)
    assert silo.version("payments").fingerprint != first.fingerprint


def test_s3_missing_bucket_is_a_configuration_error(server_env):
    env = server_env("s3")
    silo = ParquetSilo(name="s3lake", root="s3://no-such-bucket-here/lake", **s3_settings(env))
    with pytest.raises(ConfigurationError, match="bucket.*does not exist"):
        silo.tables()


def test_s3_unreachable_endpoint():
    silo = ParquetSilo(
        name="s3lake",
        root="s3://bucket/lake",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        s3_access_key_id="a",
        s3_secret_access_key="b",
        s3_region="us-east-1",
    )
    with pytest.raises(SiloUnreachableError, match="could not be reached"):
        silo.tables()


def test_s3_half_a_key_pair_is_a_configuration_error():
    silo = ParquetSilo(name="s3lake", root="s3://bucket/lake", s3_access_key_id="only-the-id")
    with pytest.raises(ConfigurationError, match="s3_secret_access_key"):
        silo.tables()


def test_s3_bad_credentials_are_an_auth_error():
    """moto accepts any key pair unless IAM checks are on: this test starts its own moto with
    ``INITIAL_NO_AUTH_ACTION_COUNT=3`` (the first three requests create a user, its key and a
    policy; every later request must be signed by a known key), so the refusal is moto's own.
    """
    server = s3_server.start(
        Path(tempfile.mkdtemp(prefix="fed-s3auth-")),
        extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"},
    )
    try:
        endpoint = server.env["FED_TEST_S3_ENDPOINT"]
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
            region_name="us-east-1",
        )
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        iam.put_user_policy(
            UserName="reader",
            PolicyName="all",
            PolicyDocument='{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}',
        )
        good = {
            **server.env,
            "FED_TEST_S3_ACCESS_KEY": key["AccessKeyId"],
            "FED_TEST_S3_SECRET_KEY": key["SecretAccessKey"],
        }
        bucket = fresh_bucket(good)
        write_payments(s3_filesystem(good), f"{bucket}/lake")
        root = f"s3://{bucket}/lake"
        assert ParquetSilo(name="s3lake", root=root, **s3_settings(good)).tables() == ["payments"]

        bad = {**good, "FED_TEST_S3_SECRET_KEY": "wrong-secret"}
        silo = ParquetSilo(name="s3lake", root=root, **s3_settings(bad))
        with pytest.raises(SiloAuthError, match="s3lake.*refused the credentials"):
            silo.tables()
        unknown = {**good, "FED_TEST_S3_ACCESS_KEY": "AKIAUNKNOWN"}
        silo = ParquetSilo(name="s3lake", root=root, **s3_settings(unknown))
        with pytest.raises(SiloAuthError):
            silo.version("payments")
    finally:
        server.stop()
