"""What the silos read through DuckDB share: tables shipped in as Arrow, visible to one query."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pyarrow as pa

from fed_assets.keyed import keyed_sql, keys_tables
from fed_assets.silo import READ_ONLY_SQL, Capabilities


class ArrowInputs:
    """Mixin for a ``SiloResource`` whose ``_scan(sql, inputs=...)`` registers Arrow tables on
    the query's own DuckDB cursor: semi-join keys join as tables (hash semi-joins, not long
    ``IN`` lists), and small sides of a federated query ship in (ability ``temp_tables``)."""

    @property
    def capabilities(self) -> Capabilities:
        # DuckDB runs the whole query, joining tables registered on the query's own cursor.
        return replace(READ_ONLY_SQL, temp_tables=True)

    def scan_keyed(self, sql: str, keys: Mapping[str, pa.Array]) -> pa.RecordBatchReader:
        self.check_query(sql)
        names, tables = keys_tables(keys)
        return self._scan(keyed_sql(sql, "duckdb", names), inputs=tables)

    def scan_with(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.RecordBatchReader:
        self.check_query(sql)
        return self._scan(sql, inputs=dict(tables))
