"""Model IO manager: fine-tuned models as versioned artefact folders, local or on S3/GCS.

Layout under ``base_path`` for asset ``a/b`` (partition ``p``):

    a/b[/p]/versions/<version>/   weights or adapters (safetensors), tokenizer, config,
                                  metrics.json, curve.png, README.md (model card with lineage)
    a/b[/p]/CURRENT               the version downstream assets load

A new version is written completely under its own name (locally: a temporary folder renamed
into place; on object stores each object is published only when uploaded) and only then does
``CURRENT`` change, by one atomic rename or one object write. A crash or a full disk in between
leaves the previous version current. Downstream assets receive a ``FineTunedModel`` by asset key.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.fs as pafs

from fed_assets.errors import ConfigurationError
from io_managers.results import ParquetResultsIOManager

# The file naming the current version (a text file holding the version's folder name).
CURRENT = "CURRENT"


class ModelIOManager(ParquetResultsIOManager):
    """Stores ``FineTunedModel`` outputs as versioned folders (see module docstring).

    Shares the results store's location settings (``base_path``, S3 endpoint and keys).
    """

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        from fed_assets.train.errors import ModelSaveError
        from fed_assets.train.model import FineTunedModel

        if not isinstance(obj, FineTunedModel):
            raise ConfigurationError(
                f"asset {context.asset_key.to_user_string()}",
                f"the model IO manager stores FineTunedModel outputs, not {type(obj).__name__}",
                "return the model from fine_tune, or give the asset another io_manager_key",
            )
        partition = context.partition_key if context.has_partition_key else None
        version = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        obj.lineage = {
            "asset": context.asset_key.to_user_string(),
            "partition": partition,
            "run_id": _run_id(context),
            **obj.lineage,
        }
        root = self._root(context.asset_key, partition)
        fs = self._location().filesystem
        try:
            if isinstance(fs, pafs.LocalFileSystem):
                _publish_local(Path(root), version, obj)
            else:
                _publish_remote(fs, root, version, obj)
        except OSError as err:
            raise ModelSaveError(
                f"model asset {context.asset_key.to_user_string()}",
                f"writing version {version} under {root} failed ({err.strerror or err}); the "
                "previous version stays current",
                "free space or fix access to the model store, then materialise again",
            ) from err
        context.add_output_metadata(
            {"model version": version, "model path": f"{root}/versions/{version}"}
        )

    def load_input(self, context: dg.InputContext):
        key = context.upstream_output.asset_key if context.upstream_output else context.asset_key
        partitions = context.asset_partition_keys if context.has_asset_partitions else [None]
        if len(partitions) != 1:
            raise ConfigurationError(
                f"model asset {key.to_user_string()}",
                f"{len(partitions)} partitions were asked for; a model input is one model",
                "map one partition of the model to the downstream asset",
            )
        return self.load_model(key, partitions[0])

    def load_model(self, key: dg.AssetKey | str | list[str], partition: str | None = None):
        """The current version of the model stored for asset ``key`` (and ``partition``)."""
        from fed_assets.train.model import FineTunedModel

        if isinstance(key, str):
            key = dg.AssetKey.from_user_string(key)
        elif not isinstance(key, dg.AssetKey):
            key = dg.AssetKey(key)
        root = self._root(key, partition)
        fs = self._location().filesystem
        version = self.current_version(key, partition)
        folder = f"{root}/versions/{version}"
        if isinstance(fs, pafs.LocalFileSystem):
            return FineTunedModel.load(folder)
        local = Path(tempfile.mkdtemp(prefix="fed-model-"))
        pafs.copy_files(
            folder,
            str(local / version),
            source_filesystem=fs,
            destination_filesystem=pafs.LocalFileSystem(),
        )
        return FineTunedModel.load(local / version)

    def current_version(self, key: dg.AssetKey, partition: str | None = None) -> str:
        root = self._root(key, partition)
        fs = self._location().filesystem
        pointer = f"{root}/{CURRENT}"
        if fs.get_file_info(pointer).type == pafs.FileType.NotFound:
            raise ConfigurationError(
                f"model asset {key.to_user_string()}"
                + (f" partition {partition}" if partition else ""),
                f"no model is stored at {root}",
                "materialise the model asset (or that partition) first",
            )
        with fs.open_input_stream(pointer) as stream:
            return stream.read().decode().strip()

    def _root(self, key: dg.AssetKey, partition: str | None) -> str:
        parts = [self._location().base.rstrip("/"), *key.path, *([partition] if partition else [])]
        return "/".join(parts)


def _run_id(context: dg.OutputContext) -> str | None:
    try:
        return context.run_id
    except dg.DagsterInvariantViolationError:  # a context built outside a run (tests, scripts)
        return None


def _publish_local(root: Path, version: str, model) -> None:
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    tmp = versions / f".{version}.tmp"
    try:
        model.write_folder(tmp)
        tmp.rename(versions / version)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    pointer = root / f".{CURRENT}.{uuid.uuid4().hex}.tmp"
    pointer.write_text(version)
    pointer.replace(root / CURRENT)


def _publish_remote(fs: pafs.FileSystem, root: str, version: str, model) -> None:
    with tempfile.TemporaryDirectory(prefix="fed-model-") as local:
        folder = Path(local) / version
        model.write_folder(folder)
        pafs.copy_files(
            str(folder),
            f"{root}/versions/{version}",
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=fs,
        )
    with fs.open_output_stream(f"{root}/{CURRENT}") as stream:  # written last: the switch
        stream.write(version.encode())
