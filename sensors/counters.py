"""Change counters, for the silos that keep them: how many rows changed, read from metadata.

A sensor threshold ("retrain when at least 5 % of the rows changed") needs a count of changed
rows that costs no scan. Which silos keep one:

- PostgreSQL: yes. ``pg_stat_user_tables`` counts rows inserted, updated and deleted
  (``n_tup_ins + n_tup_upd + n_tup_del``, cumulative) and the rows there now (``n_live_tup``).
- Parquet (local or S3), Delta, SQLite, DuckDB, Snowflake, BigQuery: no cheap per-row count of
  changes (a listing, a log version, a file header or ``LAST_ALTERED`` say *that* a table
  changed, not how much); every change of theirs counts as a whole-table change.

Counters are looked up by silo kind in ``COUNTERS``; a kind absent from it cannot tell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlglot import exp

from fed_assets.silo import SiloResource

# Counts per table: (changed rows so far, rows now); None where the table has no counters.
Counts = dict[str, tuple[int, int] | None]


def postgres_counts(silo: SiloResource, tables: Sequence[str]) -> Counts:
    """One catalog query for all ``tables`` of a PostgreSQL silo (views and foreign tables have
    no counters and come back as ``None``)."""
    names = exp.Tuple(expressions=[exp.Literal.string(t) for t in tables])
    sql = (
        "SELECT relname AS name, (n_tup_ins + n_tup_upd + n_tup_del)::bigint AS changes, "
        "n_live_tup::bigint AS live FROM pg_catalog.pg_stat_user_tables "
        f"WHERE schemaname = {exp.Literal.string(silo.schema_).sql('postgres')} "
        f"AND relname IN {names.sql('postgres')}"
    )
    rows = {r["name"]: (r["changes"], r["live"]) for r in silo.scan(sql).read_all().to_pylist()}
    return {t: rows.get(t) for t in tables}


# Silo kind → how to read its change counters.
COUNTERS: dict[str, Callable[[SiloResource, Sequence[str]], Counts]] = {
    "postgres": postgres_counts,
}


def change_counts(silo: SiloResource, tables: Sequence[str]) -> Counts:
    """Change counters of ``tables`` where ``silo``'s kind keeps them, else ``None`` for each."""
    counter = COUNTERS.get(silo.kind)
    if counter is None or not tables:
        return dict.fromkeys(tables)
    return counter(silo, tables)
