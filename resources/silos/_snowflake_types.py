"""Snowflake's column types as Arrow, for table schemas and for query results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

# Snowflake's default fractional-second precision (TIMESTAMP = TIMESTAMP(9)), used when the
# server does not say (fakesnow's INFORMATION_SCHEMA has no DATETIME_PRECISION).
_DEFAULT_TIME_PRECISION = 9


def arrow_type(
    type_name: str,
    *,
    precision: int | None = None,
    scale: int | None = None,
    time_precision: int | None = None,
) -> pa.DataType:
    """The Arrow type a Snowflake column of ``type_name`` is read as.

    ``NUMBER(p, 0)`` is ``int64`` (as the connector returns it; a value past int64 fails the
    read with a hint to cast), ``NUMBER(p, s)`` ``decimal128(p, s)``; timestamps and times carry
    their fractional precision (9 → ns, 6 → us, 3 → ms, 0 → s), ``TIMESTAMP_TZ``/``_LTZ`` in UTC;
    semi-structured and geospatial values arrive as their JSON / WKT text; anything else as text.
    """
    name = type_name.upper().split("(")[0].strip()
    if name in ("NUMBER", "FIXED", "DECIMAL", "NUMERIC"):
        if not scale:
            return pa.int64()
        return pa.decimal128(min(precision or 38, 38), scale)
    if name in ("FLOAT", "REAL", "DOUBLE", "FLOAT8", "FLOAT4", "DOUBLE PRECISION"):
        return pa.float64()
    if name == "BOOLEAN":
        return pa.bool_()
    if name == "DATE":
        return pa.date32()
    if name in ("BINARY", "VARBINARY"):
        return pa.binary()
    unit = _time_unit(time_precision)
    if name == "TIME":
        return pa.time32(unit) if unit in ("s", "ms") else pa.time64(unit)
    if name in ("TIMESTAMP_NTZ", "TIMESTAMP", "DATETIME"):
        return pa.timestamp(unit)
    if name in ("TIMESTAMP_TZ", "TIMESTAMP_LTZ"):
        return pa.timestamp(unit, tz="UTC")
    # TEXT/VARCHAR, VARIANT/OBJECT/ARRAY (JSON), GEOGRAPHY/GEOMETRY, and anything unknown.
    return pa.string()


def result_schema(description: Sequence[Any]) -> pa.Schema:
    """The Arrow schema of a query result from the connector's ``cursor.description``.

    Needed because an empty result has no batches, and the connector's own empty-table types
    differ from those of its non-empty batches.
    """
    from snowflake.connector.constants import FIELD_ID_TO_NAME as field_names

    fields = []
    for column in description:
        type_name = field_names.get(column.type_code, "TEXT")
        is_time = type_name.startswith("TIME")
        fields.append(
            pa.field(
                column.name,
                arrow_type(
                    type_name,
                    precision=None if is_time else column.precision,
                    scale=None if is_time else column.scale,
                    time_precision=column.scale if is_time else None,
                ),
            )
        )
    return pa.schema(fields)


def _time_unit(precision: int | None) -> str:
    digits = _DEFAULT_TIME_PRECISION if precision is None else precision
    if digits == 0:
        return "s"
    if digits <= 3:
        return "ms"
    if digits <= 6:
        return "us"
    return "ns"
