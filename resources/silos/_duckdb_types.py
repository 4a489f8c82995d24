"""The Arrow types DuckDB gives a query's columns over tables of given schemas: the types a
federated result must have, whatever arithmetic the silo did (SQLite sums decimals as doubles,
PostgreSQL's ``SUM(numeric)`` has no precision)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from fed_assets import engine as fed_engine

# Queries whose result types are remembered: a plan's fragments repeat across runs of an asset.
CACHE_SIZE = 512

_cache: OrderedDict[tuple, tuple[pa.DataType, ...] | None] = OrderedDict()
_lock = threading.Lock()


def duckdb_types(
    sql: str, dialect: str, schema_of: Callable[[str], pa.Schema | None]
) -> tuple[pa.DataType, ...] | None:
    """The Arrow type of each output column of ``sql`` (in ``dialect``) as DuckDB would type it
    over empty tables with the schemas ``schema_of(table name)`` gives; None when DuckDB cannot
    type it (a function only the silo has, a table ``schema_of`` does not know).

    Table references lose their schema and catalog qualifiers (``"public"."orders"`` is typed as
    ``orders``); names defined by the query's own CTEs are left alone.
    """
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return None
    for parameter in list(tree.find_all(exp.Parameter, exp.Placeholder)):
        parameter.replace(exp.Null())  # a bound value (semi-join keys) types as its cast
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    schemas: dict[str, pa.Schema] = {}
    for table in tree.find_all(exp.Table):
        if table.name in ctes or not table.name:
            continue
        if table.name not in schemas:
            schema = schema_of(table.name)
            if schema is None:
                return None
            schemas[table.name] = schema
        table.set("db", None)
        table.set("catalog", None)
    try:
        text = tree.sql(dialect="duckdb")
    except sqlglot.errors.SqlglotError:
        return None
    key = (text, tuple((n, str(s)) for n, s in sorted(schemas.items())))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    types = _describe(text, schemas)
    with _lock:
        _cache[key] = types
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return types


def _describe(sql: str, schemas: Mapping[str, pa.Schema]) -> tuple[pa.DataType, ...] | None:
    con = fed_engine.cursor("result-types", memory_limit="256MB")
    try:
        for name, schema in schemas.items():
            con.register(name, schema.empty_table())
        return tuple(con.sql(sql).limit(0).to_arrow_table().schema.types)
    except duckdb.Error:
        return None
    finally:
        con.close()
