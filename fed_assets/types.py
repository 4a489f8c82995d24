"""Mapping SQL column types (any sqlglot dialect) to Arrow types."""

from __future__ import annotations

import pyarrow as pa
import sqlglot
from sqlglot import exp

_T = exp.DataType.Type

# sqlglot's dialect-neutral type → Arrow. Types not listed fall back to strings.
_ARROW: dict[exp.DataType.Type, pa.DataType] = {
    _T.BOOLEAN: pa.bool_(),
    _T.TINYINT: pa.int8(),
    _T.SMALLINT: pa.int16(),
    _T.INT: pa.int32(),
    _T.MEDIUMINT: pa.int32(),
    _T.BIGINT: pa.int64(),
    _T.UTINYINT: pa.uint8(),
    _T.USMALLINT: pa.uint16(),
    _T.UINT: pa.uint32(),
    _T.UBIGINT: pa.uint64(),
    _T.FLOAT: pa.float32(),
    _T.DOUBLE: pa.float64(),
    _T.DECIMAL: pa.float64(),
    _T.MONEY: pa.float64(),
    _T.DATE: pa.date32(),
    _T.DATETIME: pa.timestamp("us"),
    _T.TIMESTAMP: pa.timestamp("us"),
    _T.TIMESTAMPNTZ: pa.timestamp("us"),
    _T.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    _T.TIMESTAMPLTZ: pa.timestamp("us", tz="UTC"),
    _T.TIME: pa.time64("us"),
    _T.BINARY: pa.binary(),
    _T.VARBINARY: pa.binary(),
    _T.BLOB: pa.binary(),
    _T.JSON: pa.string(),
    _T.UUID: pa.string(),
}


def arrow_type(sql_type: str | exp.DataType | None, *, dialect: str | None = None) -> pa.DataType:
    """The Arrow type for a SQL type such as ``'NUMERIC(10,2)'`` or ``'TIMESTAMP'``.

    Unknown or unparsable types map to ``string``, so a value is never lost, only left as text.
    """
    if sql_type is None:
        return pa.string()
    if isinstance(sql_type, str):
        try:
            sql_type = exp.DataType.build(sql_type, dialect=dialect, udt=True)
        except (sqlglot.errors.ParseError, ValueError):
            return pa.string()
    if sql_type.this in (_T.DECIMAL, _T.BIGDECIMAL) and sql_type.expressions:
        params = [p.this for p in sql_type.expressions]
        try:
            precision = int(params[0].this if hasattr(params[0], "this") else params[0])
            scale = int(params[1].this) if len(params) > 1 else 0
            if precision <= 38:
                return pa.decimal128(precision, scale)
        except (TypeError, ValueError, AttributeError):
            pass
    return _ARROW.get(sql_type.this, pa.string())
