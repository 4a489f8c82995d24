"""The demo's silos on local disk (DuckDB, Parquet, SQLite): no server needed.

The four finance silos, plus three regional loan books (one per country, one of each kind),
whose training rows stay in their country: ``fr_loans`` exports nothing at all.
"""

from __future__ import annotations

from fed_assets.demo.generate import DemoPaths
from fed_assets.silo import SiloPolicy, SiloResource
from resources.silos.duckdb import DuckDBSilo
from resources.silos.parquet import ParquetSilo
from resources.silos.sqlite import SQLiteSilo

PII = ["customers.full_name", "customers.email", "customers.iban", "customers.date_of_birth"]


def embedded_silos(paths: DemoPaths) -> dict[str, SiloResource]:
    """The demo silos on local disk: no server needed."""
    silos = [
        DuckDBSilo(
            name="eu_core_banking",
            path=str(paths.core_banking),
            region="eu",
            owner="team:core-banking",
            # Customer attributes may go to the UK analytics engine; PII never leaves the EU.
            policy=SiloPolicy(pii_columns=PII, allowed_regions=["eu", "uk"]),
        ),
        ParquetSilo(
            name="us_payments", root=str(paths.payments), region="us", owner="team:payments"
        ),
        DuckDBSilo(
            name="loans_warehouse", path=str(paths.loans), region="uk", owner="team:lending"
        ),
        SQLiteSilo(
            name="compliance_store",
            path=str(paths.compliance),
            region="eu",
            owner="team:compliance",
            policy=SiloPolicy(allowed_regions=["eu", "uk"]),
        ),
        *regional_silos(paths),
    ]
    return {s.name: s for s in silos}


def regional_silos(paths: DemoPaths) -> list[SiloResource]:
    """The regional loan books: DE (DuckDB), FR (SQLite, export: none), ES (Parquet)."""
    return [
        DuckDBSilo(
            name="de_loans",
            path=str(paths.regional("de_loans")),
            region="de",
            owner="team:lending-de",
            policy=SiloPolicy(allowed_regions=["de"]),
        ),
        SQLiteSilo(
            name="fr_loans",
            path=str(paths.regional("fr_loans")),
            region="fr",
            owner="team:lending-fr",
            policy=SiloPolicy(export="none"),
        ),
        ParquetSilo(
            name="es_loans",
            root=str(paths.regional("es_loans")),
            region="es",
            owner="team:lending-es",
            policy=SiloPolicy(allowed_regions=["es"]),
        ),
    ]
