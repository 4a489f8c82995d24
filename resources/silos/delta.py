"""The Delta Lake silo: every folder under ``root`` that holds a ``_delta_log/`` is a table."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from fed_assets.errors import (
    CorruptDataError,
    EmptyTableError,
    FedAssetsError,
    SiloQueryError,
    UnknownTableError,
)
from fed_assets.silo import ColumnStats, TableStats, TableVersion
from resources.silos._files import FileSilo, is_hidden

if TYPE_CHECKING:
    from deltalake import DeltaTable

# Commit files and checkpoints in _delta_log/, e.g. 00000000000000000007.json and
# 00000000000000000010.checkpoint.parquet (or a multi-part 10.checkpoint.0000000001.0000000002.parquet).
_LOG_ENTRY = re.compile(r"^(\d{20})\.(json|checkpoint(\.\d+\.\d+)?\.parquet)$")
# Newest commit files read when looking for the one that broke the log: commits after the last
# checkpoint (Delta writers checkpoint every 10 or 100) are the ones deltalake replays.
BROKEN_COMMIT_SEARCH = 100


class DeltaSilo(FileSilo):
    """Delta tables under ``root`` (local or S3): one table per folder holding a ``_delta_log/``.

    ``schema`` reads the Delta schema from the log, ``stats`` the add actions' record counts, sizes
    and min/max/null counts (no data files are opened), ``version`` only lists ``_delta_log/``.
    Scans register ``DeltaTable.to_pyarrow_dataset()`` in DuckDB, so file skipping by partition
    values and statistics comes from the Delta log and the Parquet row groups.
    """

    kind: ClassVar[str] = "delta"

    @property
    def dialect(self) -> str:
        return "duckdb"

    # ----------------------------------------------------------------- catalog
    def tables(self) -> list[str]:
        folders = [
            info
            for info in self.list_dir(self.location.base)
            if info.type == pafs.FileType.Directory and not is_hidden(info.base_name)
        ]
        if not folders:
            return []
        fs = self.location.filesystem
        try:
            logs = fs.get_file_info([f"{info.path}/_delta_log" for info in folders])
        except OSError as err:
            raise self.storage_error(err) from None
        return sorted(
            info.base_name
            for info, log in zip(folders, logs, strict=True)
            if log.type == pafs.FileType.Directory
        )

    def table_uri(self, table: str) -> str:
        """The URI deltalake opens for ``table``."""
        return self.location.uri(self.location.join(table))

    def delta_table(self, table: str) -> DeltaTable:
        """The ``DeltaTable`` of ``table``, its log read (not its data)."""
        table = self.require_table(table)
        self._require_commits(table)
        try:
            from deltalake import DeltaTable  # the driver, imported by the steps that read Delta

            return DeltaTable(self.table_uri(table), storage_options=self.storage_options() or None)
        except Exception as err:
            raise self._delta_error(err, table) from None

    def dataset(self, table: str) -> ds.Dataset:
        """The table's live files as a dataset with partition values from the log.

        Data files are read through the silo's own ``pyarrow.fs`` filesystem (the same timeouts,
        credentials and error translation as every other read), not deltalake's object store.
        """
        delta = self.delta_table(table)
        files = pafs.SubTreeFileSystem(self.location.join(table), self.location.filesystem)
        try:
            return delta.to_pyarrow_dataset(filesystem=files)
        except Exception as err:
            raise self._delta_error(err, table) from None

    def schema(self, table: str) -> pa.Schema:
        """The table's Delta schema as Arrow (from the log only)."""
        delta = self.delta_table(table)
        return pa.schema(delta.schema().to_arrow())

    def stats(self, table: str) -> TableStats:
        """Rows, bytes and per-column min/max/null counts summed over the log's add actions."""
        delta = self.delta_table(table)
        try:
            actions = pa.table(delta.get_add_actions(flatten=True))
            names = pa.schema(delta.schema().to_arrow()).names
        except Exception as err:
            raise self._delta_error(err, table) from None
        records = actions.column("num_records").to_pylist()
        counted = all(n is not None for n in records)
        columns = {
            name: _column_stats(actions, name, records)
            for name in names
            if f"null_count.{name}" in actions.column_names
        }
        return TableStats(
            rows=sum(n or 0 for n in records) if counted else None,
            bytes=sum(actions.column("size_bytes").to_pylist()),
            columns=columns,
            exact=counted,
        )

    def version(self, table: str) -> TableVersion:
        """The highest commit number in ``_delta_log/`` (one listing, no log parsing)."""
        table = self.require_table(table)
        number, name = self._require_commits(table)
        return TableVersion(
            fingerprint=str(number),
            method="metadata",
            detail=f"listing of {self.table_uri(table)}/_delta_log: highest entry {name}",
        )

    # ----------------------------------------------------------------- helpers
    def _require_commits(self, table: str) -> tuple[int, str]:
        """The highest log entry of ``table`` (number, file name); a log without one is empty."""
        log = self.location.join(table, "_delta_log")
        try:
            entries = self.list_dir(log)
        except FedAssetsError:
            raise
        best: tuple[int, str] | None = None
        for info in entries:
            match = _LOG_ENTRY.match(info.base_name)
            if match and (best is None or int(match.group(1)) > best[0]):
                best = (int(match.group(1)), info.base_name)
        if best is None:
            raise EmptyTableError(
                f"silo '{self.name}', table '{table}'",
                f"{self.location.uri(log)} holds no commits",
                "write the table with a Delta writer, or remove the folder",
            )
        return best

    def _delta_error(self, err: Exception, table: str) -> FedAssetsError:
        """Translate a deltalake error: a broken log is corrupt data, storage errors as usual."""
        if isinstance(err, FedAssetsError):
            return err
        text = str(err)
        kind = type(err).__name__
        if kind == "TableNotFoundError":
            return UnknownTableError(
                f"silo '{self.name}', table '{table}'",
                f"no Delta table at {self.table_uri(table)} ({text.splitlines()[0]})",
                "check the silo's root, or write the table first",
            )
        translated = self.storage_error(err, table=table)
        if not isinstance(translated, SiloQueryError):
            return translated
        lowered = text.lower()
        if any(word in lowered for word in ("json", "parse", "deserializ", "invalid", "corrupt")):
            named = re.search(r"\d{20}\.json", text)
            log_file = named.group(0) if named else self._locate_broken_commit(table)
            where = f"silo '{self.name}', table '{table}'"
            if log_file:
                where += f", file '{self.table_uri(table)}/_delta_log/{log_file}'"
            return CorruptDataError(
                where,
                f"the Delta log cannot be read ({text.splitlines()[0]})",
                "restore the log file from a backup, or rewrite the table with a Delta writer",
            )
        return translated

    def _locate_broken_commit(self, table: str) -> str | None:
        """The newest commit file of ``table`` that is not valid JSON lines (searched on failure)."""
        log = self.location.join(table, "_delta_log")
        fs = self.location.filesystem
        try:
            commits = sorted(
                (i.base_name for i in fs.get_file_info(pafs.FileSelector(log))),
                reverse=True,
            )
        except OSError:
            return None
        commits = [name for name in commits if name.endswith(".json") and _LOG_ENTRY.match(name)]
        for name in commits[:BROKEN_COMMIT_SEARCH]:
            try:
                with fs.open_input_stream(f"{log}/{name}") as handle:
                    for line in handle.read().decode().splitlines():
                        if line.strip():
                            json.loads(line)
            except (OSError, ValueError):
                return name
        return None

    def locate_corrupt_file(self, table: str) -> str | None:
        """The first data file of ``table`` whose Parquet footer does not decode."""
        import pyarrow.parquet as pq

        try:
            paths = self.delta_table(table).file_uris()
        except FedAssetsError:
            return None
        fs = self.location.filesystem
        for uri in paths:
            path = uri.removeprefix("file://").removeprefix(f"{self.location.scheme}://")
            try:
                with fs.open_input_file(path) as handle:
                    pq.read_metadata(handle)
            except Exception:
                return uri
        return None


def _column_stats(actions: pa.Table, name: str, records: list[int | None]) -> ColumnStats:
    """Merge the per-file statistics of column ``name``; unknown when any file lacks them."""
    nulls = actions.column(f"null_count.{name}").to_pylist()
    null_count = None if any(n is None for n in nulls) else sum(nulls)
    lows = _values(actions, f"min.{name}")
    highs = _values(actions, f"max.{name}")
    low: Any = None
    high: Any = None
    known = lows is not None and highs is not None
    if known:
        for n_null, n_rows, lo, hi in zip(nulls, records, lows, highs, strict=True):
            if n_rows is not None and n_null is not None and n_null >= n_rows:
                continue  # an all-null (or empty) file has no min/max to give
            if lo is None or hi is None:
                known = False
                break
            try:
                low = lo if low is None else min(low, lo)
                high = hi if high is None else max(high, hi)
            except TypeError:
                known = False
                break
    return ColumnStats(
        min=low if known else None, max=high if known else None, null_count=null_count
    )


def _values(actions: pa.Table, column: str) -> list[Any] | None:
    return actions.column(column).to_pylist() if column in actions.column_names else None
