"""BigQuery's types as Arrow, and which queries the Storage Read API can serve without a job."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from sqlglot import exp

# BigQuery type names (standard and legacy spellings) to Arrow. NUMERIC/BIGNUMERIC keep their
# maximum precision; GEOGRAPHY (WKT), JSON and INTERVAL travel as text.
SCALARS: dict[str, pa.DataType] = {
    "INTEGER": pa.int64(),
    "INT64": pa.int64(),
    "FLOAT": pa.float64(),
    "FLOAT64": pa.float64(),
    "NUMERIC": pa.decimal128(38, 9),
    "BIGNUMERIC": pa.decimal256(76, 38),
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "STRING": pa.string(),
    "BYTES": pa.binary(),
    "DATE": pa.date32(),
    "DATETIME": pa.timestamp("us"),
    "TIME": pa.time64("us"),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "GEOGRAPHY": pa.string(),
    "JSON": pa.string(),
    "INTERVAL": pa.string(),
}


def arrow_schema(fields) -> pa.Schema:
    """The Arrow schema of BigQuery ``SchemaField``s (REQUIRED → not nullable, REPEATED → list)."""
    return pa.schema([arrow_field(f) for f in fields])


def arrow_field(field) -> pa.Field:
    kind = field.field_type.upper()
    if kind in ("RECORD", "STRUCT"):
        dtype: pa.DataType = pa.struct([arrow_field(f) for f in field.fields])
    elif kind == "RANGE":
        element = SCALARS.get((field.range_element_type.element_type or "").upper(), pa.string())
        dtype = pa.struct([("start", element), ("end", element)])
    else:
        dtype = SCALARS.get(kind, pa.string())
    mode = (field.mode or "NULLABLE").upper()
    if mode == "REPEATED":
        return pa.field(field.name, pa.list_(dtype), nullable=False)
    return pa.field(field.name, dtype, nullable=mode != "REQUIRED")


def cast_batches(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Cast each batch to ``schema`` (drops driver field metadata, unifies types across paths)."""
    for batch in batches:
        if batch.schema.equals(schema, check_metadata=True):
            yield batch
        else:
            yield pa.RecordBatch.from_arrays(
                [col.cast(f.type) for col, f in zip(batch.columns, schema, strict=True)],
                schema=schema,
            )


def plain_read(
    statement: exp.Expression, project: str, dataset: str
) -> tuple[list[str] | None, exp.Expression | None, int | None, str] | None:
    """``(columns or None for *, where, limit, table)`` when ``statement`` only projects plain
    columns of one table of ``project.dataset``, filters rows and limits them; else None."""
    if not isinstance(statement, exp.Select):
        return None
    allowed = {"expressions", "from", "where", "limit", "from_"}
    if any(value for key, value in statement.args.items() if key not in allowed):
        return None
    source = statement.args.get("from") or statement.args.get("from_")
    if source is None or not isinstance(source.this, exp.Table):
        return None
    table = source.this
    if any(v for k, v in table.args.items() if k not in ("this", "db", "catalog", "alias")):
        return None
    if not isinstance(table.this, exp.Identifier):
        return None
    if table.catalog and table.catalog != project:
        return None
    if not table.db or table.db != dataset:
        return None
    qualifiers = {"", table.name, table.alias_or_name}
    columns: list[str] | None = []
    for projection in statement.expressions:
        if isinstance(projection, exp.Star) and not any(projection.args.values()):
            if len(statement.expressions) != 1:
                return None
            columns = None
        elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Identifier):
            if projection.table not in qualifiers:
                return None
            columns.append(projection.name)
        else:
            return None
    if columns is not None and len({c.lower() for c in columns}) != len(columns):
        return None
    where = statement.args.get("where")
    condition = where.this.copy() if where is not None else None
    if condition is not None:
        if any(
            isinstance(node, (exp.Subquery, exp.Select, exp.AggFunc, exp.Window))
            for node in condition.walk()
        ):
            return None
        if any(c.table not in qualifiers for c in condition.find_all(exp.Column)):
            return None
    limit = statement.args.get("limit")
    count = None
    if limit is not None:
        value = limit.expression
        if (
            not isinstance(value, exp.Literal)
            or value.is_string
            or any(v for k, v in limit.args.items() if k != "expression")
        ):
            return None
        count = int(value.this)
    return columns, condition, count, table.name
