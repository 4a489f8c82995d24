"""What SQL may reach a silo: one read-only query, filters as checked expressions, allowed functions.

``parse_read_only`` admits exactly one query and names any write it hides (``WITH d AS (DELETE
... RETURNING *) SELECT ...``).

A user's ``where`` (an IO manager input, a partition predicate, any condition bound for a silo) is
parsed here into one sqlglot expression and checked before it goes anywhere: exactly one
expression (no statement, no second statement, nothing that closes a parenthesis it did not
open), only the table's own columns, no subquery unless the caller asks for them, and only
functions on the allow-list. Conditions are then combined with ``combine``, which ANDs trees: an
``OR`` inside one condition can never escape into another.

The function allow-list (``check_functions``) guards every SQL sent to a silo: any function
sqlglot knows by type (``lower``, ``date_trunc``, ``md5``, ...) is side-effect free except the
few in ``REFUSED_TYPED`` (they read files); a function sqlglot does not know is refused unless
the silo's dialect lists it in ``ALLOWED_BY_DIALECT`` or the silo's ``allowed_functions`` setting
names it. So ``pg_read_file``, ``pg_sleep``, ``set_config``, ``dblink``, DuckDB's ``getenv`` and
``read_text`` never reach a silo.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlglot
from sqlglot import exp

from fed_assets.errors import (
    QuerySyntaxError,
    ReadOnlyViolation,
    UnknownColumnError,
    UnsafeFunctionError,
)

# Functions sqlglot types that read or write files, so no user SQL may call them in a silo.
REFUSED_TYPED: tuple[type[exp.Expression], ...] = (exp.ReadCSV, exp.ReadParquet)

# Functions sqlglot does not type but that are pure and common, per dialect: names a silo's SQL
# may call without the silo's allowed_functions saying so. Kept short on purpose: a name belongs
# here only when it reads nothing but its arguments and changes nothing.
ALLOWED_BY_DIALECT: dict[str, frozenset[str]] = {
    "duckdb": frozenset(
        {"strip_accents", "nfc_normalize", "list_value", "struct_pack", "epoch", "epoch_ms"}
    ),
    "postgres": frozenset(
        {"btrim", "initcap", "translate", "to_number", "date_part", "age", "pg_backend_pid"}
    ),
    "sqlite": frozenset({"ifnull", "instr", "printf", "julianday", "strftime", "typeof"}),
    "snowflake": frozenset({"iff", "nvl", "nvl2", "zeroifnull", "div0", "try_to_number"}),
    "bigquery": frozenset({"safe_divide", "format_date", "parse_date", "ifnull"}),
}
# Statement types that only read. Anything else is refused before it reaches a silo.
_QUERY_TYPES: tuple[type[exp.Expression], ...] = (exp.Select, exp.Union, exp.Intersect, exp.Except)
# Node types that make a condition something other than a condition.
_STATEMENTS = (exp.DML, exp.DDL, exp.Command, exp.Set, exp.Use, exp.Pragma, exp.Copy)


def parse_condition(
    condition: str | exp.Expression,
    *,
    columns: Sequence[str],
    where: str,
    dialect: str = "duckdb",
    allow_subqueries: bool = False,
    allowed_functions: Collection[str] = (),
) -> exp.Expression:
    """``condition`` as one checked expression over ``columns``, spelled as the table spells them.

    Args:
        condition: SQL text (a boolean expression) or an expression built in code.
        columns: the table's column names; a column not among them (ignoring case) is refused.
        where: what the errors name (silo and table).
        dialect: the dialect the text is written in.
        allow_subqueries: whether ``IN (SELECT ...)`` and the like may appear.
        allowed_functions: further function names allowed (see ``check_functions``).

    Raises:
        QuerySyntaxError: not exactly one expression, a statement, a subquery, a star.
        UnknownColumnError: a column the table does not have.
        UnsafeFunctionError: a function not on the allow-list.
    """
    fix = "write the filter as one SQL boolean expression over the table's columns"
    if isinstance(condition, exp.Expression):
        tree = condition.copy()
    else:
        try:
            parsed = [e for e in sqlglot.parse(str(condition), read=dialect) if e is not None]
        except sqlglot.errors.SqlglotError as err:
            raise QuerySyntaxError(
                where, f"the row filter {condition!r} does not parse: {first_error(err)}", fix
            ) from None
        if len(parsed) != 1:
            raise QuerySyntaxError(
                where,
                f"the row filter {condition!r} holds {len(parsed)} statements, not one expression",
                fix,
            )
        (tree,) = parsed
    if isinstance(tree, (exp.Query, *_STATEMENTS)) or tree.find(*_STATEMENTS):
        raise QuerySyntaxError(
            where, f"the row filter {_shown(condition)} is a {tree.key.upper()} statement", fix
        )
    if not allow_subqueries and tree.find(exp.Query):
        raise QuerySyntaxError(
            where,
            f"the row filter {_shown(condition)} holds a subquery, which may read other tables",
            "filter on the table's own columns; join other tables in a federated query instead",
        )
    if tree.find(exp.Star):
        raise QuerySyntaxError(where, f"the row filter {_shown(condition)} holds a '*'", fix)
    check_functions(tree, dialect=dialect, where=where, allowed=allowed_functions)
    lowered = {c.lower(): c for c in columns}
    for column in tree.find_all(exp.Column):
        if column.find_ancestor(exp.Query) is not None:
            continue  # a permitted subquery's own columns
        spelled = column.name if column.name in columns else lowered.get(column.name.lower())
        if spelled is None:
            raise UnknownColumnError(
                f"{where}, column '{column.name}'",
                "the row filter names a column the table does not have",
                f"use one of: {', '.join(columns)}",
            )
        column.replace(exp.column(spelled, quoted=True))
    return tree


def combine(*conditions: exp.Expression | None) -> exp.Expression | None:
    """The AND of the given conditions as one tree (``None`` when there are none)."""
    present = [c for c in conditions if c is not None]
    return exp.and_(*present) if present else None


def check_functions(
    tree: exp.Expression, *, dialect: str, where: str, allowed: Collection[str] = ()
) -> None:
    """Refuse a function call in ``tree`` that is not on the allow-list for ``dialect``.

    Raises:
        UnsafeFunctionError: naming the function and how to allow it.
    """
    extra = {name.lower() for name in allowed}
    known = ALLOWED_BY_DIALECT.get(dialect, frozenset())
    for node in tree.find_all(exp.Func):
        if isinstance(node, REFUSED_TYPED):
            name = node.sql_name().lower()
        elif isinstance(node, exp.Anonymous):
            name = str(node.name).lower()
        else:
            continue
        if name in known or name in extra:
            continue
        raise UnsafeFunctionError(
            f"{where}, function {name}()",
            f"{name}() is not on the {dialect} allow-list of side-effect-free functions sent to "
            "silos (it may read files or settings, or change state)",
            f"use a standard SQL function instead; if {name}() only reads its arguments, add "
            f"'{name}' to the silo's allowed_functions setting",
        )


def _shown(condition: str | exp.Expression) -> str:
    return repr(condition if isinstance(condition, str) else condition.sql())


def first_error(err: sqlglot.errors.SqlglotError) -> str:
    """The first parse error with its line and column."""
    if getattr(err, "errors", None):
        e = err.errors[0]
        return f"{e.get('description')} at line {e.get('line')}, column {e.get('col')}"
    return str(err).splitlines()[0]


def parse_read_only(sql: str, *, dialect: str, where: str) -> exp.Expression:
    """Parse exactly one read-only query; refuse anything else before it reaches any silo.

    Args:
        where: what the error messages name (a silo, or "query" for a federated query).

    Raises:
        QuerySyntaxError: the SQL does not parse (the message gives line and column).
        ReadOnlyViolation: several statements, DML, DDL, or a write hidden in a query.
    """
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except sqlglot.errors.SqlglotError as err:
        raise QuerySyntaxError(
            where, f"the SQL does not parse as {dialect}: {first_error(err)}", "correct the SQL"
        ) from None
    if len(statements) != 1:
        raise ReadOnlyViolation(
            where,
            f"expected one query, got {len(statements)} statements",
            "send a single SELECT; silo reads are read-only",
        )
    (statement,) = statements
    if not isinstance(statement, _QUERY_TYPES):
        raise ReadOnlyViolation(
            where,
            f"'{statement.key.upper()}' statements are refused: silo reads are read-only",
            "send a SELECT query; write results through an asset's IO manager instead",
        )
    write = _write_in(statement)
    if write is not None:
        raise ReadOnlyViolation(
            where,
            f"the query hides a write: {write}; silo reads are read-only",
            "send a SELECT query without data-modifying parts; write results through an "
            "asset's IO manager instead",
        )
    return statement


def _write_in(statement: exp.Expression) -> str | None:
    """What write a query hides (``SELECT ... INTO``, a data-modifying CTE), named; else None."""
    if statement.args.get("into") is not None:
        return "SELECT ... INTO creates a table"
    for node in statement.walk():
        if isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop)):
            cte = node.find_ancestor(exp.CTE)
            place = f" in the WITH clause '{cte.alias_or_name}'" if cte is not None else ""
            return f"a {node.key.upper()} statement{place}"
    return None
