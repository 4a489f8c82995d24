"""A BigQuery dataset as a silo: queries run in BigQuery, results stream back as Arrow.

Client choice: this module builds ``google.cloud.bigquery.Client`` itself rather than going
through dagster-gcp's ``BigQueryResource``. That resource passes a key only by writing it to a
temporary file named in the process-wide ``GOOGLE_APPLICATION_CREDENTIALS`` variable for the life
of the client (racy when fragments on several silos run at once, and refused when the variable is
already set), reaches an emulator only through the process-wide ``BIGQUERY_EMULATOR_HOST``, so two
silos cannot use two endpoints, and builds no Storage Read client. Here every silo carries its own
credentials object, endpoint and Storage Read client; ``gcp_credentials`` accepts the same base64
service-account key ``BigQueryResource`` takes (or the key's JSON as is), so configuration carries
over. Without a key the client uses Application Default Credentials; with an emulator endpoint it
uses anonymous credentials.

How results travel (measured against bqemulator 1.4.0 on two cores):

- a plain ``SELECT columns FROM table [WHERE ...] [LIMIT n]`` over a real table is read with the
  Storage Read API directly (selected fields + row restriction): no query job at all;
- any other query runs as a query job. On BigQuery its result table is Storage-Read; the emulator
  cannot Storage-Read query results, so when an emulator gRPC endpoint and a ``scratch_dataset``
  are configured the query is materialised with ``CREATE OR REPLACE TABLE
  <scratch>._fed_tmp_<uuid> AS <query>``, that table is Storage-Read and then dropped (50 000 rows:
  37 ms, against 1.03 s through REST pages; 5 rows: 25 ms either way). The user's SQL itself is
  checked read-only by ``SiloResource.scan`` before it is wrapped;
- without a Storage Read client, results come as REST pages (``to_arrow_iterable``), and the
  client is never allowed to create a Storage Read client of its own.

Every batch is cast to the Arrow schema derived from BigQuery's own schema (``arrow_schema``), so
all paths give the same types.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pyarrow as pa
import sqlglot
from pydantic import Field, PrivateAttr
from sqlglot import exp

from fed_assets.errors import (
    ConfigurationError,
    FedAssetsError,
    SiloAuthError,
    SiloQueryError,
    SiloUnreachableError,
    UnknownColumnError,
    UnknownTableError,
)
from fed_assets.silo import (
    Capabilities,
    SiloResource,
    TableStats,
    TableVersion,
    stream,
)
from resources.silos._bigquery_errors import auth_failure, first_line, over_grpc, unreachable
from resources.silos._bigquery_types import arrow_schema, cast_batches, plain_read

# Prefix of the tables that materialise query results in the scratch dataset; tables() hides them.
TMP_PREFIX = "_fed_tmp_"
# A scratch table left behind by a crashed reader expires on its own after this long (real
# BigQuery honours it; the emulator ignores it and loses everything at exit anyway).
TMP_EXPIRY_HOURS = 6
# Storage Read streams per session. We read them one after another, so more streams would only
# hold server resources; one stream also keeps the order of an ORDER BY query.
STORAGE_STREAMS = 1
# Rows per REST page when results come through the REST API: fewer round trips than the
# client's default, still a few MB per page.
REST_PAGE_ROWS = 50_000

# Guards the lazy creation of each silo's clients (a module lock: resources get copied, locks
# cannot be).
_CLIENT_LOCK = threading.Lock()

_READ_SCOPES = ("https://www.googleapis.com/auth/bigquery",)

# Driver messages that name a missing column (BigQuery's own, then the emulator's DuckDB ones).
_COLUMN_PATTERNS = (
    re.compile(r"Unrecognized name: `?([\w$]+)`?"),
    re.compile(r"Name `?([\w$]+)`? not found inside"),
    re.compile(r'Referenced column "([^"]+)" not found'),
    re.compile(r'does not have a column named "([^"]+)"'),
)
_TABLE_PATTERN = re.compile(
    r"(?:Not found: Table|Table with name) `?([\w\-.:]+?)`?(?:!| was not found| does not exist)"
)


class BigQuerySilo(SiloResource):
    """Tables of one BigQuery dataset.

    Example:
        .. code-block:: python

            from dagster import EnvVar

            BigQuerySilo(
                name="loans",
                project="acme-analytics",
                dataset="loans",
                location="EU",
                region="eu",
                gcp_credentials=EnvVar("LOANS_BQ_KEY_B64"),
            )
    """

    kind: ClassVar[str] = "bigquery"

    project: str = Field(description="Google Cloud project that holds the dataset and runs jobs.")
    dataset: str = Field(description="Dataset whose tables this silo exposes.")
    location: str | None = Field(
        default=None,
        description="Location of the dataset and its query jobs, e.g. 'EU' or 'us-central1'; "
        "None lets BigQuery infer it.",
    )
    gcp_credentials: str | None = Field(
        default=None,
        description="Service-account key: its JSON, or the JSON base64-encoded as dagster-gcp "
        "expects (`base64 -w0 key.json`). Pass it as dagster.EnvVar('NAME') so it never sits in "
        "code or run config; None uses Application Default Credentials.",
    )
    scratch_dataset: str | None = Field(
        default=None,
        description="Dataset (in `project`) the silo may write to, for materialising query "
        "results as short-lived `_fed_tmp_*` tables when the server cannot Storage-Read query "
        "results (the emulator). Created if missing. None: such results come as REST pages.",
    )
    use_storage_api: bool = Field(
        default=True,
        description="Read tables and results through the BigQuery Storage Read API (Arrow over "
        "gRPC). False: REST pages only (slower; needs no bigquery.readsessions permission).",
    )
    emulator_rest_endpoint: str | None = Field(
        default=None,
        description="REST endpoint of a BigQuery emulator, e.g. 'http://127.0.0.1:9050'; set, "
        "the silo uses anonymous credentials and never dials Google.",
    )
    emulator_grpc_endpoint: str | None = Field(
        default=None,
        description="Storage Read gRPC endpoint of the emulator, e.g. '127.0.0.1:9060' "
        "(plaintext); None reads emulator results through REST.",
    )
    version_from_content: bool = Field(
        default=False,
        description="Fingerprint tables from their rows (a billed scan) instead of the "
        "`modified`/`etag` metadata. Always on with an emulator, whose metadata never changes.",
    )
    maximum_bytes_billed: int | None = Field(
        default=None,
        description="Refuse any query job that would bill more than this many bytes.",
    )
    timeout_s: float = Field(
        default=120.0,
        description="Seconds an API call may keep retrying (network errors, 5xx) before failing.",
    )

    _client: Any = PrivateAttr(default=None)
    _storage: Any = PrivateAttr(default=None)
    _scratch_ready: bool = PrivateAttr(default=False)

    # ----------------------------------------------------------------- protocol
    @property
    def dialect(self) -> str:
        return "bigquery"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    def table_expression(self, table: str) -> exp.Table:
        """``project``.``dataset``.``table``: BigQuery needs the dataset, and jobs run in project."""
        return exp.Table(
            this=exp.to_identifier(table, quoted=True),
            db=exp.to_identifier(self.dataset, quoted=True),
            catalog=exp.to_identifier(self.project, quoted=True),
        )

    def tables(self) -> list[str]:
        with self._errors():
            client = self._bq()
            listed = client.list_tables(
                f"{self.project}.{self.dataset}", retry=self._retry(), timeout=self.timeout_s
            )
            names = [t.table_id for t in listed]
        if self.scratch_dataset == self.dataset:
            names = [n for n in names if not n.startswith(TMP_PREFIX)]
        return sorted(names)

    def schema(self, table: str) -> pa.Schema:
        return arrow_schema(self._table(table).schema)

    def stats(self, table: str) -> TableStats:
        meta = self._table(table)
        if self._metadata_unusable():
            # The emulator's num_rows ignores DML and its num_bytes is always 0: count instead.
            rows, _ = self._fingerprint(meta.table_id)
            return TableStats(rows=rows, bytes=None, exact=True)
        is_table = meta.table_type == "TABLE"
        return TableStats(
            rows=meta.num_rows if is_table else None,
            bytes=meta.num_bytes if is_table else None,
            # Rows still in the streaming buffer are not in num_rows yet.
            exact=is_table and meta.streaming_buffer is None,
        )

    def version(self, table: str) -> TableVersion:
        meta = self._table(table)
        reason = self._metadata_unusable_reason(meta)
        if reason is None:
            modified = meta.modified.isoformat() if meta.modified else "unknown"
            return TableVersion(
                fingerprint=f"modified={modified};etag={meta.etag}",
                method="metadata",
                detail=f"table metadata of {self.project}.{self.dataset}.{meta.table_id}: "
                f"modified {modified}, etag {meta.etag}",
            )
        rows, xor = self._fingerprint(meta.table_id)
        return TableVersion(
            fingerprint=f"rows={rows};xor={xor}",
            method="content",
            detail=f"content fingerprint of {rows} rows of {self.dataset}.{meta.table_id} "
            "(COUNT(*) and BIT_XOR of FARM_FINGERPRINT(TO_JSON_STRING(row)), a scan) because "
            f"{reason}",
        )

    def _scan(self, sql: str) -> pa.RecordBatchReader:
        with self._errors():  # e.g. no Application Default Credentials for the clients
            storage = self._storage_client()
            direct = self._direct_read(sql) if storage is not None else None
            if direct is not None:
                return direct
            if self.emulator_rest_endpoint:
                # The emulator cannot Storage-Read query results: materialise them first.
                if storage is not None and self.scratch_dataset:
                    return self._scan_via_scratch(sql)
                return self._scan_rest(sql, storage=None)
            return self._scan_rest(sql, storage=storage)

    def wrap_error(self, err: Exception, *, table: str | None = None) -> FedAssetsError:
        if isinstance(err, FedAssetsError):
            return err
        from google.api_core import exceptions as gexc

        where = f"silo '{self.name}'" + (f", table '{table}'" if table else "")
        message = first_line(err)
        if unreachable(err):
            if over_grpc(err):
                endpoint = "the Storage Read API at " + (
                    self.emulator_grpc_endpoint or "bigquerystorage.googleapis.com"
                )
            else:
                endpoint = "BigQuery at " + (
                    self.emulator_rest_endpoint or "bigquery.googleapis.com"
                )
            return SiloUnreachableError(
                where,
                f"{endpoint} cannot be reached: {message}",
                "check the network (or that the emulator runs at that endpoint) and retry; "
                "raise timeout_s if the link is slow",
            )
        if auth_failure(err):
            return SiloAuthError(
                where,
                f"BigQuery refused the credentials for project '{self.project}': {message}",
                "set gcp_credentials (via dagster.EnvVar) to a service-account key with "
                "roles/bigquery.dataViewer on the dataset and roles/bigquery.jobUser and "
                "roles/bigquery.readSessionUser on the project, or configure Application "
                "Default Credentials",
            )
        if isinstance(err, gexc.NotFound):
            missing = _TABLE_PATTERN.search(message)
            ours = re.search(
                rf"Not found: Dataset [\w\-.]*[:.]{re.escape(self.dataset)}\b", message
            )
            if ours and not table:
                return ConfigurationError(
                    where,
                    f"dataset '{self.dataset}' does not exist in project '{self.project}'",
                    "set the silo's dataset (and project, location) to an existing dataset",
                )
            name = table or (missing.group(1).split(".")[-1] if missing else None)
            if name or "Not found: Dataset" in message:
                return UnknownTableError(
                    f"silo '{self.name}'" + (f", table '{name}'" if name else ""),
                    f"BigQuery has no such table: {message}",
                    f"use a table of dataset '{self.project}.{self.dataset}' (see tables()), "
                    "written as silo.table_expression(name)",
                )
        for pattern in _COLUMN_PATTERNS:
            found = pattern.search(message)
            if found:
                return UnknownColumnError(
                    f"{where}, column '{found.group(1)}'",
                    f"BigQuery knows no such column: {message}",
                    "use a column listed by schema(table)",
                )
        return SiloQueryError(
            where,
            f"the BigQuery silo failed: {type(err).__name__}: {message}",
            "check the query (GoogleSQL) and the job in the BigQuery console",
        )

    # ----------------------------------------------------------------- clients
    def _bq(self):
        """The REST client, created once per resource instance."""
        with _CLIENT_LOCK:
            if self._client is None:
                from google.api_core.client_options import ClientOptions
                from google.cloud import bigquery

                options = None
                if self.emulator_rest_endpoint:
                    options = ClientOptions(api_endpoint=self.emulator_rest_endpoint)
                self._client = bigquery.Client(
                    project=self.project,
                    location=self.location,
                    credentials=self._credentials(),
                    client_options=options,
                )
            return self._client

    def _storage_client(self):
        """The Storage Read client, or None where it is not to be used."""
        if not self.use_storage_api or (
            self.emulator_rest_endpoint and not self.emulator_grpc_endpoint
        ):
            return None
        with _CLIENT_LOCK:
            if self._storage is None:
                from google.cloud import bigquery_storage

                if self.emulator_grpc_endpoint:
                    import grpc
                    from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (  # noqa: E501
                        BigQueryReadGrpcTransport,
                    )

                    channel = grpc.insecure_channel(self.emulator_grpc_endpoint)
                    transport = BigQueryReadGrpcTransport(channel=channel)
                    self._storage = bigquery_storage.BigQueryReadClient(transport=transport)
                else:
                    self._storage = bigquery_storage.BigQueryReadClient(
                        credentials=self._credentials()
                    )
            return self._storage

    def _credentials(self):
        if self.emulator_rest_endpoint:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        if not self.gcp_credentials:
            return None  # Application Default Credentials
        from google.oauth2 import service_account

        text = self.gcp_credentials.strip()
        try:
            info = json.loads(text if text.startswith("{") else base64.b64decode(text))
            return service_account.Credentials.from_service_account_info(
                info, scopes=list(_READ_SCOPES)
            )
        except (ValueError, KeyError) as err:
            raise ConfigurationError(
                f"silo '{self.name}'",
                f"gcp_credentials is not a service-account key ({type(err).__name__})",
                "pass the key's JSON, or its base64 (`base64 -w0 key.json`), via dagster.EnvVar",
            ) from None

    def _retry(self):
        from google.cloud import bigquery

        return bigquery.DEFAULT_RETRY.with_deadline(self.timeout_s)

    def _grpc_retry(self):
        """Storage Read calls retry transient gRPC errors for at most ``timeout_s``."""
        from google.api_core import exceptions as gexc
        from google.api_core.retry import Retry, if_exception_type

        return Retry(
            predicate=if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded),
            deadline=self.timeout_s,
        )

    def _job_retry(self):
        """Re-running a failed job (rate limits, lost connections) also stops after timeout_s."""
        from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

        return DEFAULT_JOB_RETRY.with_deadline(self.timeout_s)

    @contextmanager
    def _errors(self, table: str | None = None) -> Iterator[None]:
        try:
            yield
        except FedAssetsError:
            raise
        except Exception as err:
            raise self.wrap_error(err, table=table) from err

    # ----------------------------------------------------------------- metadata
    def _table(self, table: str):
        """Table metadata; unknown tables raise ``UnknownTableError`` listing the others."""
        name = self.require_table(table)
        with self._errors(table=name):
            return self._bq().get_table(
                f"{self.project}.{self.dataset}.{name}", retry=self._retry(), timeout=self.timeout_s
            )

    def _metadata_unusable(self) -> bool:
        return self.version_from_content or bool(self.emulator_rest_endpoint)

    def _metadata_unusable_reason(self, meta) -> str | None:
        if self.version_from_content:
            return "the silo is configured with version_from_content=True"
        if self.emulator_rest_endpoint:
            return (
                "the BigQuery emulator never updates a table's modified time or etag "
                f"(emulator_rest_endpoint={self.emulator_rest_endpoint})"
            )
        if meta.table_type != "TABLE":
            return f"a {meta.table_type}'s metadata does not change when its source data does"
        if meta.modified is None:
            return "BigQuery reported no modified time for the table"
        return None

    def _fingerprint(self, table: str) -> tuple[int, int]:
        """(row count, XOR of per-row fingerprints) of ``table``, computed in BigQuery."""
        target = self.table_expression(table).sql(dialect=self.dialect)
        sql = (
            "SELECT COUNT(*) AS n, "
            f"COALESCE(BIT_XOR(FARM_FINGERPRINT(TO_JSON_STRING(t))), 0) AS fp FROM {target} AS t"
        )
        with self._errors(table=table):
            (row,) = list(self._wait(self._run(sql)))
        return int(row["n"]), int(row["fp"])

    def _run(self, sql: str):
        """Start a query job for ``sql`` (GoogleSQL) with this silo's limits."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            use_legacy_sql=False,
            maximum_bytes_billed=self.maximum_bytes_billed,
            # BigQuery cancels the job itself past the query's time bound.
            job_timeout_ms=round(self.time_bound() * 1000),
        )
        return self._bq().query(
            sql,
            job_config=config,
            location=self.location,
            retry=self._retry(),
            # None here: a non-None job_retry wraps the insert in a fixed 10-minute retry.
            # Failed jobs are still re-run, within timeout_s, by _wait's job_retry.
            job_retry=None,
            timeout=self.timeout_s,
        )

    def _wait(self, job, **options):
        """Wait for ``job`` as long as it runs; API calls retry for at most ``timeout_s``."""
        return job.result(retry=self._retry(), job_retry=self._job_retry(), **options)

    # ----------------------------------------------------------------- reading
    def _scan_rest(self, sql: str, *, storage) -> pa.RecordBatchReader:
        """Run ``sql`` as a query job; read its result with ``storage`` or, if None, via REST."""
        with self._errors():
            rows = self._wait(self._run(sql), page_size=REST_PAGE_ROWS)
            schema = arrow_schema(rows.schema)
        # With storage=None the client reads REST pages and creates no Storage Read client.
        batches = rows.to_arrow_iterable(bqstorage_client=storage)
        return stream(schema, cast_batches(batches, schema), on_error=self.wrap_error)

    def _scan_via_scratch(self, sql: str) -> pa.RecordBatchReader:
        """Materialise ``sql`` as a scratch table, Storage-Read it, drop it when done."""
        self._ensure_scratch()
        tmp = f"{TMP_PREFIX}{uuid.uuid4().hex}"
        target = exp.Table(
            this=exp.to_identifier(tmp, quoted=True),
            db=exp.to_identifier(self.scratch_dataset, quoted=True),
            catalog=exp.to_identifier(self.project, quoted=True),
        ).sql(dialect=self.dialect)
        body = sql.strip()
        while body.endswith(";"):
            body = body[:-1].rstrip()
        ctas = (
            f"CREATE OR REPLACE TABLE {target} OPTIONS(expiration_timestamp="
            f"TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL {TMP_EXPIRY_HOURS} HOUR)) AS\n{body}\n"
        )
        table_id = f"{self.project}.{self.scratch_dataset}.{tmp}"

        def drop() -> None:
            with contextlib.suppress(Exception):  # best effort: the table expires on its own
                self._bq().delete_table(
                    table_id, not_found_ok=True, retry=self._retry(), timeout=self.timeout_s
                )

        try:
            with self._errors():
                self._wait(self._run(ctas))
                meta = self._bq().get_table(table_id, retry=self._retry(), timeout=self.timeout_s)
            schema = arrow_schema(meta.schema)
            batches = self._storage_batches(self.scratch_dataset, tmp, schema)
        except BaseException:
            drop()
            raise
        return stream(schema, batches, on_error=self.wrap_error, close=drop)

    def _storage_batches(
        self,
        dataset: str,
        table: str,
        schema: pa.Schema,
        *,
        fields: list[str] | None = None,
        row_restriction: str | None = None,
        limit: int | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Open a read session on ``dataset.table`` now; the batches come as they are read."""
        from google.cloud.bigquery_storage_v1 import types

        client = self._storage_client()
        options = types.ReadSession.TableReadOptions(
            selected_fields=fields or [], row_restriction=row_restriction or ""
        )
        with self._errors(table=table):
            session = client.create_read_session(
                parent=f"projects/{self.project}",
                read_session=types.ReadSession(
                    table=f"projects/{self.project}/datasets/{dataset}/tables/{table}",
                    data_format=types.DataFormat.ARROW,
                    read_options=options,
                ),
                max_stream_count=STORAGE_STREAMS,
                retry=self._grpc_retry(),
                timeout=self.timeout_s,
            )

        def batches() -> Iterator[pa.RecordBatch]:
            if not session.streams:  # an empty table (or result)
                return
            wire = pa.ipc.read_schema(pa.py_buffer(session.arrow_schema.serialized_schema))
            left = limit
            for read_stream in session.streams:
                # ReadRowsStream resumes at the last offset after a transient error; no
                # timeout here: a big table may stream for longer than timeout_s.
                for response in client.read_rows(read_stream.name, retry=self._grpc_retry()):
                    data = response.arrow_record_batch.serialized_record_batch
                    if not data:
                        continue
                    batch = pa.ipc.read_record_batch(pa.py_buffer(data), wire)
                    if left is not None:
                        batch = batch.slice(0, left)
                        left -= batch.num_rows
                    if batch.num_rows:
                        yield batch
                    if left == 0:
                        return

        return cast_batches(batches(), schema)

    def _direct_read(self, sql: str) -> pa.RecordBatchReader | None:
        """Storage-Read a plain projection/filter/limit of one table of ours; None otherwise."""
        plan = plain_read(sqlglot.parse_one(sql, read=self.dialect), self.project, self.dataset)
        if plan is None:
            return None
        names, where, limit, table_name = plan
        table = self.require_table(table_name)
        meta = self._table(table)
        if meta.table_type != "TABLE":
            return None  # views and external tables cannot be Storage-Read
        full = arrow_schema(meta.schema)
        if names is None:
            columns = full.names
            out_names = columns
        else:
            columns = self.require_columns(table, names)
            out_names = names
        if where is not None:
            for column in where.find_all(exp.Column):
                (resolved,) = self.require_columns(table, [column.name])
                column.set("this", exp.to_identifier(resolved, quoted=True))
                column.set("table", None)
        schema = pa.schema(
            [full.field(c).with_name(n) for c, n in zip(columns, out_names, strict=True)]
        )
        batches = self._storage_batches(
            self.dataset,
            table,
            pa.schema([full.field(c) for c in dict.fromkeys(columns)]),
            fields=list(dict.fromkeys(columns)),
            row_restriction=where.sql(dialect=self.dialect) if where is not None else None,
            limit=limit,
        )
        ordered = (
            pa.RecordBatch.from_arrays([b.column(c) for c in columns], schema=schema)
            for b in batches
        )
        return stream(schema, ordered, on_error=lambda e: self.wrap_error(e, table=table))

    def _ensure_scratch(self) -> None:
        if self._scratch_ready:
            return
        from google.cloud import bigquery

        dataset = bigquery.Dataset(f"{self.project}.{self.scratch_dataset}")
        if self.location:
            dataset.location = self.location
        with self._errors():
            self._bq().create_dataset(
                dataset, exists_ok=True, retry=self._retry(), timeout=self.timeout_s
            )
        self._scratch_ready = True
