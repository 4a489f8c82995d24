"""What the file-based silos (Parquet, Delta) share: where the files are, and a DuckDB read path.

``FileSilo`` turns its ``root`` (a local path, ``file://``, ``s3://bucket/prefix`` or
``gs://bucket/prefix``) into a ``pyarrow.fs`` filesystem and a base path, translates storage
errors into ``FedAssetsError``s, and implements ``_scan``: the SQL is parsed, every table it names
is registered, on a cursor of the silo's own embedded DuckDB (``fed_assets.engine``), as a view over a ``pyarrow.dataset`` (DuckDB pushes
projections and filters into the dataset scan, so partitions and row groups are pruned), and the
result streams back batch by batch. DuckDB never touches storage itself: its external access is
switched off, so a query cannot read files outside the silo.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import sqlglot
from dagster import EnvVar
from pydantic import Field, PrivateAttr
from sqlglot import exp

from fed_assets import engine as fed_engine
from fed_assets.errors import (
    ConfigurationError,
    CorruptDataError,
    FedAssetsError,
    SiloAuthError,
    SiloQueryError,
    SiloUnreachableError,
)
from fed_assets.silo import BATCH_ROWS, SiloResource, stream
from resources.silos._arrow_inputs import ArrowInputs

# Seconds to wait for a TCP connection / a response from S3: long enough for a busy region, short
# enough that a wrong endpoint fails a sensor tick in seconds rather than minutes.
S3_CONNECT_TIMEOUT = 5.0
S3_REQUEST_TIMEOUT = 30.0
# Attempts per S3 request (the AWS SDK's standard retry strategy): rides out throttling and blips
# without hiding a dead endpoint for long.
S3_MAX_ATTEMPTS = 3
# How long a GCS access token given in configuration is assumed to live; GCP's default is 1 hour.
GCS_TOKEN_LIFETIME = dt.timedelta(hours=1)
# File and folder names that are not data (Spark's _SUCCESS, _temporary, Delta's _delta_log,
# Hadoop's .crc files): pyarrow.dataset's own default.
HIDDEN_PREFIXES = (".", "_")

_AUTH_MARKERS = (
    "ACCESS_DENIED",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "Permission denied",
    "status code 403",
    "status code 401",
)
_UNREACHABLE_MARKERS = (
    "NETWORK_CONNECTION",
    "curlCode",
    "Could not connect",
    "Couldn't connect",
    "Could not resolve",
    "Connection refused",
    "connection refused",
    "timed out",
    "Timeout",
    "UNAVAILABLE",
    "EndpointConnectionError",
)
_NO_BUCKET_MARKERS = ("NO_SUCH_BUCKET", "NoSuchBucket", "bucket does not exist")
_CORRUPT_MARKERS = (
    "Footer length error",  # DuckDB's own Parquet reader
    "No magic bytes found",
    "too small to be a Parquet file",
    "Parquet magic bytes not found",
    "Could not open Parquet input source",
    "Couldn't deserialize thrift",
    "Unexpected end of stream",
    "Parquet file size is",
    "is not a parquet file",
    "Corrupt",
    "corrupt",
    "Invalid: ",
    "Could not read schema",
)
# DuckDB errors about the query or the engine, never about a file's bytes: no file is searched.
_NOT_ABOUT_FILES = (
    duckdb.BinderException,
    duckdb.ParserException,
    duckdb.CatalogException,
    duckdb.ConversionException,
    duckdb.OutOfMemoryException,
    duckdb.InterruptException,
    duckdb.PermissionException,
)
# A quoted path in a pyarrow error message, e.g. "Could not open Parquet input source '<path>'".
_QUOTED_PATH = re.compile(r"'([^']+)'")


@dataclass(frozen=True)
class Location:
    """Where a silo's files are: a filesystem, the base path in it, and the URI scheme."""

    filesystem: pafs.FileSystem
    base: str
    scheme: str  # "file", "s3" or "gs"

    def join(self, *parts: str) -> str:
        """The filesystem path of ``parts`` under the base."""
        return "/".join([self.base.rstrip("/"), *parts]) if self.base else "/".join(parts)

    def uri(self, path: str) -> str:
        """``path`` as a user would write it (``s3://bucket/key`` or a local path)."""
        return path if self.scheme == "file" else f"{self.scheme}://{path}"

    def relative(self, path: str) -> str:
        """``path`` relative to the base, for fingerprints and messages."""
        base = self.base.rstrip("/") + "/"
        return path[len(base) :] if path.startswith(base) else path


def secret(value: str | None) -> str | None:
    """The value of a setting that may be a ``dagster.EnvVar`` not yet resolved by Dagster."""
    if isinstance(value, EnvVar):
        return value.get_value()
    return value


def is_hidden(relative_path: str) -> bool:
    """Whether any component of ``relative_path`` marks it as not data (``_SUCCESS``, ``.crc``)."""
    return any(part.startswith(HIDDEN_PREFIXES) for part in relative_path.split("/"))


class FileSilo(ArrowInputs, SiloResource):
    """Base of the silos whose tables are files under one root folder or bucket prefix.

    Subclasses implement ``tables``, ``schema``, ``stats``, ``version`` and ``dataset(table)``
    (a ``pyarrow.dataset.Dataset`` over the table's files); ``_scan`` is provided.
    """

    root: str = Field(
        description="Folder holding the tables: a local path, 'file:///path', "
        "'s3://bucket/prefix' or 'gs://bucket/prefix'."
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint, e.g. 'http://127.0.0.1:9000' for MinIO or moto; "
        "an 'http://' URL allows plain HTTP. None uses AWS.",
    )
    s3_region: str | None = Field(
        default=None, description="S3 region, e.g. 'eu-central-1'; None lets the SDK resolve it."
    )
    s3_access_key_id: str | None = Field(
        default=None,
        description="S3 access key id, e.g. EnvVar('AWS_ACCESS_KEY_ID'); None uses the default "
        "AWS credential chain (environment, profile, instance role).",
    )
    s3_secret_access_key: str | None = Field(
        default=None,
        description="S3 secret key: pass EnvVar('AWS_SECRET_ACCESS_KEY'), never a literal.",
    )
    s3_session_token: str | None = Field(
        default=None,
        description="S3 session token for temporary credentials, e.g. EnvVar('AWS_SESSION_TOKEN').",
    )
    s3_anonymous: bool = Field(
        default=False, description="Read a public bucket without signing requests."
    )
    gcs_endpoint_url: str | None = Field(
        default=None,
        description="GCS-compatible endpoint, e.g. 'http://127.0.0.1:4443' for an emulator; "
        "None uses Google Cloud Storage.",
    )
    gcs_access_token: str | None = Field(
        default=None,
        description="Short-lived GCP OAuth access token, e.g. EnvVar('GCS_ACCESS_TOKEN'); None "
        "uses application default credentials (GOOGLE_APPLICATION_CREDENTIALS).",
    )
    gcs_anonymous: bool = Field(
        default=False, description="Read a public GCS bucket without credentials."
    )
    gcs_project_id: str | None = Field(
        default=None, description="GCP project id; None reads GOOGLE_CLOUD_PROJECT."
    )

    _location: Location | None = PrivateAttr(default=None)
    _s3_client: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # ----------------------------------------------------------------- to override
    def dataset(self, table: str) -> ds.Dataset:
        """A ``pyarrow.dataset`` over the files of ``table`` (a name from ``tables()``)."""
        raise NotImplementedError

    def duckdb_view(self, table: str) -> str | None:
        """SQL DuckDB can read ``table`` with natively (faster than an Arrow dataset), or None."""
        return None

    def locate_corrupt_file(self, table: str) -> str | None:
        """The URI of a file of ``table`` that cannot be decoded, if one can be found cheaply."""
        return None

    # ----------------------------------------------------------------- where the files are
    @property
    def location(self) -> Location:
        """The filesystem and base path of ``root`` (built on first use, never at load time)."""
        with self._lock:
            if self._location is None:
                self._location = self._open_location()
            return self._location

    def _open_location(self) -> Location:
        root = self.root.strip()
        if not root:
            raise ConfigurationError(
                f"silo '{self.name}'", "the setting 'root' is empty", "set root to a folder or URI"
            )
        parsed = urlparse(root)
        scheme = parsed.scheme.lower()
        if scheme in ("", "file") or (len(scheme) == 1 and root[1:3] in (":\\", ":/")):
            local = parsed.path if scheme == "file" else root
            return Location(pafs.LocalFileSystem(), str(Path(local).expanduser().resolve()), "file")
        if scheme in ("s3", "s3a"):
            base = f"{parsed.netloc}{parsed.path}".rstrip("/")
            return Location(self._s3_filesystem(), base, "s3")
        if scheme in ("gs", "gcs"):
            base = f"{parsed.netloc}{parsed.path}".rstrip("/")
            return Location(self._gcs_filesystem(), base, "gs")
        raise ConfigurationError(
            f"silo '{self.name}'",
            f"root {root!r} has the unsupported scheme '{scheme}'",
            "use a local path, 'file://', 's3://bucket/prefix' or 'gs://bucket/prefix'",
        )

    def _s3_filesystem(self) -> pafs.S3FileSystem:
        options: dict[str, Any] = {
            "connect_timeout": S3_CONNECT_TIMEOUT,
            "request_timeout": S3_REQUEST_TIMEOUT,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS),
        }
        if self.s3_anonymous:
            options["anonymous"] = True
        else:
            key, secret_key = secret(self.s3_access_key_id), secret(self.s3_secret_access_key)
            if bool(key) != bool(secret_key):
                missing = "s3_secret_access_key" if key else "s3_access_key_id"
                raise ConfigurationError(
                    f"silo '{self.name}'",
                    f"'{missing}' is missing while its pair is set",
                    "set both s3_access_key_id and s3_secret_access_key (as EnvVar), or neither "
                    "to use the default AWS credential chain",
                )
            if key:
                options.update(access_key=key, secret_key=secret_key)
                if self.s3_session_token:
                    options["session_token"] = secret(self.s3_session_token)
        if self.s3_region:
            options["region"] = self.s3_region
        if self.s3_endpoint_url:
            endpoint = urlparse(self.s3_endpoint_url)
            if not endpoint.netloc:
                raise ConfigurationError(
                    f"silo '{self.name}'",
                    f"s3_endpoint_url {self.s3_endpoint_url!r} is not a URL",
                    "write it as 'http://host:port' or 'https://host'",
                )
            options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme or "https")
        return pafs.S3FileSystem(**options)

    def _gcs_filesystem(self) -> pafs.GcsFileSystem:
        options: dict[str, Any] = {"anonymous": self.gcs_anonymous}
        if self.gcs_access_token and not self.gcs_anonymous:
            options.update(
                access_token=secret(self.gcs_access_token),
                credential_token_expiration=dt.datetime.now(dt.UTC) + GCS_TOKEN_LIFETIME,
            )
        if self.gcs_endpoint_url:
            endpoint = urlparse(self.gcs_endpoint_url)
            options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme or "https")
        if self.gcs_project_id:
            options["project_id"] = self.gcs_project_id
        return pafs.GcsFileSystem(**options)

    def s3_client(self) -> Any:
        """A boto3 S3 client with this silo's settings (through dagster-aws' ``S3Resource``)."""
        from dagster_aws.s3 import S3Resource

        with self._lock:
            if self._s3_client is None:
                self._s3_client = S3Resource(
                    endpoint_url=self.s3_endpoint_url,
                    region_name=self.s3_region,
                    aws_access_key_id=secret(self.s3_access_key_id),
                    aws_secret_access_key=secret(self.s3_secret_access_key),
                    aws_session_token=secret(self.s3_session_token),
                    use_unsigned_session=self.s3_anonymous,
                    max_attempts=S3_MAX_ATTEMPTS,
                ).get_client()
            return self._s3_client

    def storage_options(self) -> dict[str, str]:
        """This silo's S3 settings as object_store (deltalake) ``storage_options``."""
        if self.location.scheme != "s3":
            return {}
        options = {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
        if self.s3_endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.s3_endpoint_url
            if self.s3_endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if self.s3_region:
            options["AWS_REGION"] = self.s3_region
        if self.s3_anonymous:
            options["AWS_SKIP_SIGNATURE"] = "true"
        else:
            for key, value in (
                ("AWS_ACCESS_KEY_ID", self.s3_access_key_id),
                ("AWS_SECRET_ACCESS_KEY", self.s3_secret_access_key),
                ("AWS_SESSION_TOKEN", self.s3_session_token),
            ):
                if value:
                    options[key] = secret(value) or ""
        return options

    def list_dir(self, path: str, *, recursive: bool = False) -> list[pafs.FileInfo]:
        """The entries under ``path``, sorted by path; storage errors become ``FedAssetsError``.

        On an object store a prefix with no objects is an empty folder (object stores have no
        folders of their own); a missing bucket or local folder is an error.
        """
        local = self.location.scheme == "file"
        selector = pafs.FileSelector(path, recursive=recursive, allow_not_found=not local)
        try:
            infos = self.location.filesystem.get_file_info(selector)
        except FileNotFoundError as err:
            if path.rstrip("/") == self.location.base.rstrip("/"):
                raise self.missing_root() from None
            raise self.storage_error(err) from None
        except OSError as err:
            raise self.storage_error(err) from None
        if not infos and not local and path.rstrip("/") == self.location.base.rstrip("/"):
            self._require_bucket()
        return sorted(infos, key=lambda info: info.path)

    def _require_bucket(self) -> None:
        """Raise ``ConfigurationError`` when the root's bucket does not exist."""
        bucket = self.location.base.split("/", 1)[0]
        try:
            info = self.location.filesystem.get_file_info(bucket)
        except OSError as err:
            raise self.storage_error(err) from None
        if info.type == pafs.FileType.NotFound:
            raise ConfigurationError(
                f"silo '{self.name}'",
                f"the bucket '{bucket}' of root {self.root!r} does not exist",
                "create the bucket or correct 'root' (and 's3_endpoint_url' if it is not AWS)",
            )

    def missing_root(self) -> FedAssetsError:
        """The error for a root that does not exist."""
        return ConfigurationError(
            f"silo '{self.name}'",
            f"the root {self.root!r} does not exist",
            "create the folder or correct the silo's 'root' setting",
        )

    # ----------------------------------------------------------------- errors
    def storage_error(
        self, err: BaseException, *, table: str | None = None, file: str | None = None
    ) -> FedAssetsError:
        """Translate a storage or decoding error into the matching ``FedAssetsError``."""
        if isinstance(err, FedAssetsError):
            return err
        where = f"silo '{self.name}'" + (f", table '{table}'" if table else "")
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        text = str(err)
        if any(marker in text for marker in _NO_BUCKET_MARKERS):
            return ConfigurationError(
                where,
                f"the bucket of root {self.root!r} does not exist ({message})",
                "create the bucket or correct 'root' (and 's3_endpoint_url' if it is not AWS)",
            )
        if isinstance(err, PermissionError) or any(m in text for m in _AUTH_MARKERS):
            return SiloAuthError(
                where,
                f"storage refused the credentials ({message})",
                "check s3_access_key_id / s3_secret_access_key (or the GCS credentials) and that "
                "they may list and read the root",
            )
        if any(marker in text for marker in _UNREACHABLE_MARKERS):
            return SiloUnreachableError(
                where,
                f"storage at {self.s3_endpoint_url or self.gcs_endpoint_url or self.root!r} "
                f"could not be reached ({message})",
                "check the endpoint URL, the network and that the storage service is running",
            )
        if isinstance(err, FileNotFoundError):
            return SiloQueryError(
                where,
                f"a file disappeared while it was read ({message})",
                "retry: the table was rewritten during the read",
            )
        if file is not None or any(marker in text for marker in _CORRUPT_MARKERS):
            path = self._path_in_message(text) if file is None else None
            if path is not None:
                file = self.location.uri(path)
                table = table or self.table_of_file(self.location.relative(path))
            if file is not None:
                return self.corrupt(table, file, message)
        return self.wrap_error(err if isinstance(err, Exception) else Exception(text), table=table)

    def corrupt(self, table: str | None, file: str, reason: str) -> CorruptDataError:
        """The error for a file of ``table`` that cannot be decoded."""
        where = f"silo '{self.name}'" + (f", table '{table}'" if table else "")
        return CorruptDataError(
            f"{where}, file '{file}'",
            f"the file cannot be read as Parquet ({reason})",
            "rewrite the file from its source, or remove it from the table",
        )

    def table_of_file(self, relative_path: str) -> str:
        """The table a file belongs to, from its path relative to the root."""
        first = relative_path.split("/", 1)[0]
        return first.removesuffix(".parquet") if "/" not in relative_path else first

    def _path_in_message(self, text: str) -> str | None:
        """A path under the root quoted in a pyarrow error message."""
        base = self.location.base.rstrip("/") + "/"
        for candidate in _QUOTED_PATH.findall(text):
            for prefix in ("", "s3://", "gs://", "file://"):
                if candidate.startswith(prefix + base):
                    return candidate[len(prefix) :]
        return None

    # ----------------------------------------------------------------- the read path
    def _scan(self, sql: str, inputs: dict[str, pa.Table] | None = None) -> pa.RecordBatchReader:
        statement = sqlglot.parse_one(sql, read="duckdb")
        names, rewritten = self._referenced_tables(statement, skip=set(inputs or {}))
        if rewritten:
            sql = statement.sql(dialect="duckdb")
        con = fed_engine.cursor(
            ("file-silo", self.name, self.location.scheme, self.location.base),
            setup=self._lock_down,
        )
        close = self._interruptible(con)
        table_of_error: list[str] = []
        try:
            for name, table in (inputs or {}).items():
                con.register(name, table)
            for written, table in names.items():
                table_of_error[:] = [table]
                view = self.duckdb_view(table)
                if view is None:
                    con.register(written, self._dataset_or_error(table))
                else:
                    name = exp.to_identifier(written, quoted=True).sql("duckdb")
                    con.execute(f"CREATE TEMP VIEW {name} AS {view}")
            table_of_error[:] = []
            reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
        except Exception as err:
            close()
            raise self._scan_error(err, table_of_error or list(names.values())) from None
        return stream(
            reader.schema,
            iter(reader),
            on_error=lambda err: self._scan_error(err, list(names.values())),
            close=close,
        )

    def _lock_down(self, engine: duckdb.DuckDBPyConnection) -> None:
        """Settings of this silo's engine: the silo's files reach it only as registered Arrow
        datasets or as views over the silo's own folder; with external access off and the
        configuration locked, a query cannot read anything else (``read_csv('/etc/passwd')``)."""
        if self.location.scheme == "file":
            root = exp.Literal.string(self.location.base).sql("duckdb")
            engine.execute(f"SET allowed_directories = [{root}]")
        engine.execute("SET enable_external_access = false")
        engine.execute("SET lock_configuration = true")

    def _referenced_tables(
        self, statement: exp.Expression, skip: set[str] = frozenset()
    ) -> tuple[dict[str, str], bool]:
        """Map each table name written in ``statement`` to the silo's table; strip qualifiers.

        Returns the mapping and whether the statement was changed (a ``db.table`` written).
        """
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        names: dict[str, str] = {}
        rewritten = False
        for node in statement.find_all(exp.Table):
            if not isinstance(node.this, exp.Identifier):
                raise SiloQueryError(
                    f"silo '{self.name}'",
                    f"table functions such as {node.this.sql('duckdb')[:60]} are refused: a "
                    "query reads the silo's tables by name",
                    f"name a table of the silo: {', '.join(self.tables())}",
                )
            if not node.args.get("db") and (node.name.lower() in ctes or node.name in skip):
                continue
            if node.args.get("db") or node.args.get("catalog"):
                node.set("db", None)
                node.set("catalog", None)
                rewritten = True
            names.setdefault(node.name, self.require_table(node.name))
        return names, rewritten

    def _dataset_or_error(self, table: str) -> ds.Dataset:
        try:
            return self.dataset(table)
        except FedAssetsError:
            raise
        except Exception as err:
            raise self.storage_error(err, table=table) from None

    def _scan_error(self, err: Exception, tables: Iterable[str]) -> FedAssetsError:
        """Translate a failure inside a DuckDB scan; find the corrupt file when none is named."""
        if isinstance(err, FedAssetsError):
            return err
        tables = list(tables)
        translated = self.storage_error(err, table=tables[0] if len(tables) == 1 else None)
        if isinstance(translated, CorruptDataError) or isinstance(err, _NOT_ABOUT_FILES):
            return translated
        # DuckDB's Parquet reader does not always say a file is at fault ("don't know what
        # type"): any other failure of a scan looks for the file that does not decode.
        for name in tables:
            file = self.locate_corrupt_file(name)
            if file is not None:
                return self.corrupt(name, file, str(err).splitlines()[0])
        return translated


def guarded(silo: FileSilo, table: str, call: Callable[[], Any], *, file: str | None = None) -> Any:
    """Run ``call`` and translate any storage error into a ``FedAssetsError`` about ``table``."""
    try:
        return call()
    except FedAssetsError:
        raise
    except Exception as err:
        raise silo.storage_error(err, table=table, file=file) from None
