"""File silos' storage and decoding errors as ``FedAssetsError``s: what a user can fix."""

from __future__ import annotations

import re

from fed_assets.errors import (
    ConfigurationError,
    CorruptDataError,
    FedAssetsError,
    SiloAuthError,
    SiloQueryError,
    SiloUnreachableError,
)

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
# A quoted path in a pyarrow error message, e.g. "Could not open Parquet input source '<path>'".
_QUOTED_PATH = re.compile(r"'([^']+)'")


class FileErrors:
    """Mixin for ``FileSilo``: storage errors (credentials, endpoint, bucket) and files that
    cannot be decoded, named by table and file."""

    def storage_error(
        self, err: BaseException, *, table: str | None = None, file: str | None = None
    ) -> FedAssetsError:
        """Translate a storage or decoding error into the matching ``FedAssetsError``."""
        if isinstance(err, FedAssetsError):
            return err
        where = self.error_where(table)
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
        where = self.error_where(table)
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
