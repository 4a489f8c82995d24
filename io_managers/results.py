"""Results store: asset outputs as Parquet files, written atomically, on a local path or S3/GCS."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import dagster as dg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import Field, PrivateAttr

from fed_assets.errors import ConfigurationError, CorruptDataError
from io_managers._frames import as_arrow, wants_pandas
from resources.silos._files import Location

if TYPE_CHECKING:
    import pandas as pd


class ParquetResultsIOManager(dg.ConfigurableIOManager):
    """Stores each asset as ``<base>/<asset/key/path>.parquet`` (``.../<partition>.parquet``).

    Local writes go to a temporary name in the same folder and are renamed into place; object
    stores (S3, GCS) publish an object only when its upload completes, so a reader never sees a
    partial file either way.
    """

    base_path: str = Field(description="Folder or s3:// / gs:// URI the results are stored under.")
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (e.g. http://127.0.0.1:9000)."
    )
    s3_access_key_id: str | None = Field(default=None, description="S3 key; use EnvVar.")
    s3_secret_access_key: str | None = Field(default=None, description="S3 secret; use EnvVar.")
    s3_region: str | None = Field(default=None, description="S3 region.")

    _resolved: Location | None = PrivateAttr(default=None)

    def _location(self) -> Location:
        """Filesystem and base path, resolved exactly as a Parquet silo at the same root would
        (once per IO manager instance)."""
        from resources.silos.parquet import ParquetSilo

        if self._resolved is None:
            self._resolved = ParquetSilo(
                name="results_store",
                root=self.base_path,
                s3_endpoint_url=self.s3_endpoint_url,
                s3_access_key_id=self.s3_access_key_id,
                s3_secret_access_key=self.s3_secret_access_key,
                s3_region=self.s3_region,
            ).location
        return self._resolved

    def _path(self, context: dg.InputContext | dg.OutputContext, partition: str | None) -> str:
        parts = [self._location().base.rstrip("/"), *context.asset_key.path]
        if partition is None:
            return "/".join(parts) + ".parquet"
        return "/".join([*parts, f"{partition}.parquet"])

    def handle_output(self, context: dg.OutputContext, obj: pa.Table | pd.DataFrame | None) -> None:
        if obj is None:
            return
        obj = as_arrow(obj)
        if not isinstance(obj, pa.Table):
            raise ConfigurationError(
                f"asset {context.asset_key.to_user_string()}",
                f"the results store keeps Arrow tables and DataFrames, not {type(obj).__name__}",
                "return a pyarrow.Table or pandas.DataFrame, or set another io_manager_key",
            )
        fs = self._location().filesystem
        partition = context.partition_key if context.has_partition_key else None
        path = self._path(context, partition)
        if isinstance(fs, pafs.LocalFileSystem):
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            try:
                pq.write_table(obj, tmp, filesystem=fs)
                fs.move(tmp, path)
            except BaseException:
                if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                    fs.delete_file(tmp)
                raise
        else:
            pq.write_table(obj, path, filesystem=fs)
        context.add_output_metadata(
            {"path": path, "dagster/row_count": obj.num_rows, "bytes": obj.nbytes}
        )

    def load_input(self, context: dg.InputContext) -> pa.Table | pd.DataFrame:
        fs = self._location().filesystem
        if context.has_asset_partitions:
            paths = [self._path(context, k) for k in context.asset_partition_keys]
        else:
            paths = [self._path(context, None)]
        tables = []
        for path in paths:
            if fs.get_file_info(path).type == pafs.FileType.NotFound:
                raise ConfigurationError(
                    f"asset {context.asset_key.to_user_string()}",
                    f"no stored result at {path}",
                    "materialise the upstream asset (or that partition) first",
                )
            try:
                tables.append(pq.read_table(path, filesystem=fs))
            except pa.ArrowInvalid as err:
                raise CorruptDataError(
                    f"asset {context.asset_key.to_user_string()}",
                    f"{path} is not a readable Parquet file: {err}",
                    "re-materialise the asset to rewrite it",
                ) from None
        result = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if wants_pandas(context):
            return result.to_pandas()
        return result
