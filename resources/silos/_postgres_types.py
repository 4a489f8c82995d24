"""PostgreSQL's types as Arrow: the driver's schema made plain, numerics as decimals, and column
statistics from ``pg_stats`` read back as values."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# libpq's header size inside a numeric typmod: typmod = ((precision << 16) | scale) + 4.
_VARHDRSZ = 4

# Largest precision each Arrow decimal type holds.
_DECIMAL128_MAX_PRECISION = 38
_DECIMAL256_MAX_PRECISION = 76


def arrow_schema(driver_schema: pa.Schema) -> pa.Schema:
    """The schema users see: ADBC's, with ``numeric`` as decimals and without driver metadata.

    ``numeric(p, s)`` becomes ``decimal128(p, s)`` (``decimal256`` past 38 digits); a
    ``numeric`` without precision becomes ``float64``, since no fixed decimal holds every value.
    Other opaque types arrive as their text.
    """
    fields = []
    for field in driver_schema:
        kind = field.type
        if isinstance(kind, pa.OpaqueType):
            kind = _numeric_type(field) if kind.type_name == "numeric" else kind.storage_type
        fields.append(pa.field(field.name, _without_metadata(kind), nullable=field.nullable))
    return pa.schema(fields)


def untyped_numerics(driver_schema: pa.Schema) -> list[int]:
    """Positions of the ``numeric`` columns without a precision (``SUM(numeric)``, ``AVG``):
    ``arrow_schema`` reads them as doubles, having nothing better."""
    return [
        i
        for i, field in enumerate(driver_schema)
        if isinstance(field.type, pa.OpaqueType)
        and field.type.type_name == "numeric"
        and pa.types.is_floating(_numeric_type(field))
    ]


def _without_metadata(kind: pa.DataType) -> pa.DataType:
    """``kind`` with the driver's field metadata removed from nested fields too."""
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        item = kind.value_field
        child = pa.field(item.name, _without_metadata(item.type), nullable=item.nullable)
        return pa.list_(child) if pa.types.is_list(kind) else pa.large_list(child)
    if pa.types.is_struct(kind):
        return pa.struct(
            [pa.field(f.name, _without_metadata(f.type), nullable=f.nullable) for f in kind]
        )
    return kind


def _numeric_type(field: pa.Field) -> pa.DataType:
    metadata = field.metadata or {}
    typmod = int(metadata.get(b"POSTGRESQL:typmod", b"-1"))
    if typmod < _VARHDRSZ:
        return pa.float64()
    precision = ((typmod - _VARHDRSZ) >> 16) & 0xFFFF
    scale = (((typmod - _VARHDRSZ) & 0x7FF) ^ 1024) - 1024  # 11-bit signed since PG 15
    if not 0 <= scale <= precision:
        return pa.float64()
    if precision <= _DECIMAL128_MAX_PRECISION:
        return pa.decimal128(precision, scale)
    if precision <= _DECIMAL256_MAX_PRECISION:
        return pa.decimal256(precision, scale)
    return pa.float64()


def min_max(values: list[str], kind: pa.DataType) -> tuple[Any, Any]:
    """Smallest and largest of PostgreSQL text ``values`` read as ``kind``; None if unreadable."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    try:
        if pa.types.is_boolean(kind):
            array = pa.array([v in ("t", "true") for v in values], pa.bool_())
        else:
            array = pc.cast(pa.array(values, pa.string()), kind)
        result = pc.min_max(array)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None, None
    return result["min"].as_py(), result["max"].as_py()


def ndv(n_distinct: float | None, rows: int | None) -> int | None:
    """pg_stats.n_distinct is a count when positive, minus a fraction of rows when negative."""
    if n_distinct is None or n_distinct == 0:
        return None
    if n_distinct > 0:
        return round(n_distinct)
    return None if rows is None else round(-n_distinct * rows)


def cast_numeric(values: pa.Array, kind: pa.DataType) -> pa.Array:
    """``values`` as ``kind``; a numeric's text with more digits than a decimal ``kind`` keeps
    (a typed aggregate's) is rounded to its scale."""
    try:
        return pc.cast(values, kind)
    except pa.ArrowInvalid:
        if not pa.types.is_decimal(kind) or not pa.types.is_string(values.type):
            raise
        wide = pc.cast(values, pa.decimal128(38, min(kind.scale + 8, 38)))
        return pc.cast(pc.round(wide, kind.scale), kind, safe=False)
