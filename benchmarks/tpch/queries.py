"""The 22 TPC-H queries: one canonical copy each, rewritten per engine so the variants cannot drift.

``queries/qNN.sql`` hold the standard queries with the spec's validation parameters, exactly as
DuckDB's ``tpch_queries()`` writes them (Q15's view is a CTE there), over plain table names.
Every engine runs a rewrite of that one text: the co-located one keeps the plain names, the
federated one (and the DuckDB-attach peer) names each table ``<silo>.<table>`` by the placement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

QUERY_DIR = Path(__file__).resolve().parent / "queries"
# All TPC-H queries are numbered 1..22.
ALL = tuple(range(1, 23))


@dataclass(frozen=True)
class Query:
    """One TPC-H query in its canonical form and the facts the harness needs about it."""

    number: int
    canonical: str
    tables: tuple[str, ...]
    """Base tables it reads (CTE names left out), sorted."""
    order_keys: tuple[str, ...] | None
    """Output columns of the top-level ORDER BY, or None when the result order is unspecified."""

    @property
    def name(self) -> str:
        return f"Q{self.number:02d}"

    def colocated(self) -> str:
        """The query over plain table names (one database holds every table)."""
        return rewrite(self.canonical, {})

    def federated(self, placement: Mapping[str, str]) -> str:
        """The query with each table named ``<silo>.<table>`` as ``placement`` says."""
        missing = [t for t in self.tables if t not in placement]
        if missing:
            raise KeyError(f"{self.name}: no silo placed for table(s) {', '.join(missing)}")
        return rewrite(self.canonical, placement)


def load(numbers: tuple[int, ...] = ALL) -> list[Query]:
    """The canonical queries ``numbers`` from ``queries/qNN.sql``."""
    out = []
    for number in numbers:
        if number not in ALL:
            raise ValueError(f"TPC-H has queries 1..22, not {number}")
        text = (QUERY_DIR / f"q{number:02d}.sql").read_text()
        tree = sqlglot.parse_one(text, read="duckdb")
        out.append(
            Query(
                number=number,
                canonical=text,
                tables=tuple(sorted(base_tables(tree))),
                order_keys=_order_keys(tree),
            )
        )
    return out


def base_tables(tree: exp.Expression) -> set[str]:
    """Names of the tables ``tree`` reads, CTE names left out."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name not in ctes}


def rewrite(sql: str, placement: Mapping[str, str]) -> str:
    """``sql`` with every unqualified table in ``placement`` qualified by its silo name.

    CTE names and tables already qualified are left alone; the output is DuckDB SQL.
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if table.db or table.name in ctes:
            continue
        silo = placement.get(table.name)
        if silo is not None:
            table.set("db", exp.to_identifier(silo))
    return tree.sql(dialect="duckdb", pretty=True)


def _order_keys(tree: exp.Expression) -> tuple[str, ...] | None:
    """Output column names of the top-level ORDER BY (TPC-H orders by plain columns/aliases)."""
    order = tree.args.get("order")
    if order is None:
        return None
    keys = []
    for item in order.expressions:
        node = item.this if isinstance(item, exp.Ordered) else item
        keys.append(node.alias_or_name if isinstance(node, exp.Column | exp.Alias) else node.sql())
    return tuple(keys)
