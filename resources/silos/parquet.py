"""The Parquet silo: a folder (local, S3 or GCS) whose sub-folders and ``.parquet`` files are tables."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from sqlglot import exp

from fed_assets.errors import EmptyTableError
from fed_assets.silo import ColumnStats, TableStats, TableVersion
from resources.silos._files import FileSilo, guarded, is_hidden

# Keys per list_objects_v2 page: the S3 maximum, so a 10 000-file table costs 10 requests.
S3_LIST_PAGE = 1000


class ParquetSilo(FileSilo):
    """Parquet files under ``root``: each folder (or ``<name>.parquet`` file) directly under it is
    a table; hive-style partition folders (``month=2025-01/``) inside a table become columns.

    Reads never copy the table: DuckDB scans a ``pyarrow.dataset`` over the table's files, with
    projections and filters pushed into it, so unneeded partitions and row groups are skipped.
    ``schema`` and ``stats`` read Parquet footers only; ``version`` reads only the file listing.

    Example:
        ``ParquetSilo(name="payments", root="s3://lake/payments", s3_region="us-east-1",
        s3_access_key_id=EnvVar("AWS_ACCESS_KEY_ID"),
        s3_secret_access_key=EnvVar("AWS_SECRET_ACCESS_KEY"))``
    """

    kind: ClassVar[str] = "parquet"

    @property
    def dialect(self) -> str:
        return "duckdb"

    # ----------------------------------------------------------------- catalog
    def tables(self) -> list[str]:
        return sorted(self._table_entries())

    def _table_entries(self) -> dict[str, pafs.FileInfo]:
        """Table name → the folder or file holding it; a folder wins over a same-named file."""
        entries: dict[str, pafs.FileInfo] = {}
        for info in self.list_dir(self.location.base):
            if is_hidden(info.base_name):
                continue
            if info.type == pafs.FileType.Directory:
                entries[info.base_name] = info
            elif info.type == pafs.FileType.File and info.base_name.endswith(".parquet"):
                entries.setdefault(info.base_name.removesuffix(".parquet"), info)
        return entries

    def _entry(self, table: str) -> pafs.FileInfo:
        return self._table_entries()[self.require_table(table)]

    def files(self, table: str) -> list[pafs.FileInfo]:
        """The data files of ``table`` (hidden files such as ``_SUCCESS`` left out), by path."""
        entry = self._entry(table)
        if entry.type == pafs.FileType.File:
            return [entry]
        return [
            info
            for info in self.list_dir(entry.path, recursive=True)
            if info.type == pafs.FileType.File and not is_hidden(info.path[len(entry.path) + 1 :])
        ]

    def _require_files(self, table: str) -> tuple[pafs.FileInfo, list[pafs.FileInfo]]:
        entry = self._entry(table)
        files = self.files(table)
        if not files:
            raise EmptyTableError(
                f"silo '{self.name}', table '{table}'",
                f"the folder {self.location.uri(entry.path)!r} holds no Parquet files",
                "write Parquet files into the folder, or remove the folder",
            )
        return entry, files

    def duckdb_view(self, table: str) -> str | None:
        """On a local disk, DuckDB's own Parquet reader: 3× faster than an Arrow dataset here
        (TPC-H SF1 Q1 0.105 s against 0.32 s), with the same pruning of row groups."""
        if self.location.scheme != "file":
            return None
        entry, files = self._require_files(table)
        paths = exp.Array(expressions=[exp.Literal.string(f.path) for f in files]).sql("duckdb")
        hive = "false" if entry.type == pafs.FileType.File else "true"
        return f"SELECT * FROM read_parquet({paths}, hive_partitioning = {hive})"

    def dataset(self, table: str) -> ds.Dataset:
        entry, files = self._require_files(table)
        fs = self.location.filesystem
        paths = [info.path for info in files]
        if entry.type == pafs.FileType.File:
            return guarded(self, table, lambda: ds.dataset(paths, filesystem=fs, format="parquet"))
        return guarded(
            self,
            table,
            lambda: ds.dataset(
                paths,
                filesystem=fs,
                format="parquet",
                partitioning="hive",
                partition_base_dir=entry.path,
            ),
        )

    def schema(self, table: str) -> pa.Schema:
        """Columns of the first file's footer plus hive partition columns (no rows are read)."""
        return self.dataset(self.require_table(table)).schema

    def stats(self, table: str) -> TableStats:
        """Rows and per-column min/max/nulls from every file's footer; bytes are file sizes."""
        table = self.require_table(table)
        _, files = self._require_files(table)
        fs = self.location.filesystem
        rows = 0
        merged: dict[str, _ColumnAcc] = {}
        for info in files:
            uri = self.location.uri(info.path)

            def read_footer(path: str = info.path) -> pq.FileMetaData:
                with fs.open_input_file(path) as handle:
                    return pq.read_metadata(handle)

            metadata = guarded(self, table, read_footer, file=uri)
            rows += metadata.num_rows
            _merge_footer(metadata, merged)
        return TableStats(
            rows=rows,
            bytes=sum(info.size or 0 for info in files),
            columns={name: acc.result() for name, acc in merged.items()},
            exact=True,
        )

    def version(self, table: str) -> TableVersion:
        """A fingerprint of the file listing: keys and ETags on S3, paths, sizes and mtimes elsewhere."""
        table = self.require_table(table)
        entry = self._entry(table)
        if self.location.scheme == "s3":
            return self._s3_version(table, entry)
        files = self.files(table)
        lines = [
            f"{self.location.relative(info.path)}\t{info.size}\t{info.mtime_ns}" for info in files
        ]
        what = "modification times (ns)" if self.location.scheme == "file" else "modification times"
        return TableVersion(
            fingerprint=_digest(lines),
            method="metadata",
            detail=f"listing of {self.location.uri(entry.path)}: {len(files)} files, "
            f"paths, sizes and {what}",
        )

    def _s3_version(self, table: str, entry: pafs.FileInfo) -> TableVersion:
        bucket, _, key = entry.path.partition("/")
        prefix = key if entry.type == pafs.FileType.File else key + "/"
        lines = []

        def listing() -> None:
            pages = self.s3_client().get_paginator("list_objects_v2")
            for page in pages.paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": S3_LIST_PAGE}
            ):
                for obj in page.get("Contents", []):
                    relative = obj["Key"][len(prefix) :] or obj["Key"]
                    if obj["Key"].endswith("/"):
                        continue  # a folder marker some writers create: not data
                    if entry.type == pafs.FileType.File or not is_hidden(relative):
                        version_id = obj.get("VersionId", "")
                        lines.append(f"{obj['Key']}\t{obj['ETag']}\t{version_id}")

        guarded(self, table, listing)
        return TableVersion(
            fingerprint=_digest(sorted(lines)),
            method="metadata",
            detail=f"list_objects_v2 of s3://{bucket}/{prefix}: {len(lines)} objects, keys and "
            "ETags",
        )

    def locate_corrupt_file(self, table: str) -> str | None:
        """The first file of ``table`` whose footer does not decode."""
        fs = self.location.filesystem
        for info in self.files(table):
            try:
                with fs.open_input_file(info.path) as handle:
                    pq.read_metadata(handle)
            except Exception:
                return self.location.uri(info.path)
        return None


class _ColumnAcc:
    """Min, max and null count of one column merged over row groups; unknown stays unknown."""

    def __init__(self) -> None:
        self.min: Any = None
        self.max: Any = None
        self.nulls: int | None = 0
        self.min_max_known = True

    def add(self, statistics: pq.Statistics | None, num_values: int) -> None:
        if statistics is None:
            self.nulls = None
            self.min_max_known = False
            return
        nulls = statistics.null_count if statistics.has_null_count else None
        self.nulls = None if self.nulls is None or nulls is None else self.nulls + nulls
        if statistics.has_min_max:
            try:
                self.min = statistics.min if self.min is None else min(self.min, statistics.min)
                self.max = statistics.max if self.max is None else max(self.max, statistics.max)
            except TypeError:  # values of different types across files: give up on min/max
                self.min_max_known = False
        elif nulls is None or nulls < num_values:
            self.min_max_known = False  # a row group with values but no min/max

    def result(self) -> ColumnStats:
        known = self.min_max_known
        return ColumnStats(
            min=self.min if known else None,
            max=self.max if known else None,
            null_count=self.nulls,
        )


def _merge_footer(metadata: pq.FileMetaData, merged: dict[str, _ColumnAcc]) -> None:
    """Fold the row-group statistics of one file's footer into ``merged`` (top-level columns)."""
    for rg_index in range(metadata.num_row_groups):
        row_group = metadata.row_group(rg_index)
        for col_index in range(row_group.num_columns):
            chunk = row_group.column(col_index)
            name = chunk.path_in_schema
            if "." in name and name not in metadata.schema.names:
                continue  # a nested field: no table-level statistic
            acc = merged.setdefault(name, _ColumnAcc())
            acc.add(chunk.statistics if chunk.is_stats_set else None, chunk.num_values)


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
