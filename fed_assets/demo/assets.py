"""Demo assets that read the finance silos in place (lineage starts at the silo tables)."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import duckdb
import pyarrow as pa

from fed_assets import metadata as md
from fed_assets.demo.generate import REPORTING_THRESHOLD, YEAR

MONTHLY = dg.MonthlyPartitionsDefinition(start_date=f"{YEAR}-01-01", end_date=f"{YEAR + 1}-01-01")
# Cash deposits this close under the reporting threshold count as possible structuring.
STRUCTURING_BAND = 1_000.0


def code_version(sql: str, ins: dict[str, dg.AssetIn]) -> str:
    """A digest of what decides a demo asset's value besides its sources' data: its SQL and what
    each input reads (columns, filter, partition column)."""
    reads = {name: dict(a.metadata or {}) for name, a in sorted(ins.items())}
    text = sql + json.dumps(reads, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sql(query: str, **tables: pa.Table) -> pa.Table:
    """Run ``query`` in an embedded DuckDB over Arrow tables named by keyword."""
    with duckdb.connect() as con:
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(query).to_arrow_table()


MONTHLY_VOLUME_SQL = (
    "SELECT strftime(booked_at, '%Y-%m') AS month, counterparty_country, "
    "count(*) AS payments, round(sum(amount), 2) AS volume "
    "FROM transactions GROUP BY ALL ORDER BY volume DESC"
)
MONTHLY_VOLUME_INS = {
    "transactions": dg.AssetIn(
        key=["us_payments", "transactions"],
        metadata={
            "columns": ["booked_at", "amount", "counterparty_country", "status"],
            "where": "status = 'settled'",
            "partition_column": "booked_at",
        },
    )
}


@dg.asset(
    group_name="payments_analytics",
    partitions_def=MONTHLY,
    kinds={"duckdb"},
    ins=MONTHLY_VOLUME_INS,
    code_version=code_version(MONTHLY_VOLUME_SQL, MONTHLY_VOLUME_INS),
)
def monthly_volume_by_country(context, transactions: pa.Table) -> pa.Table:
    """Settled payment volume per counterparty country for one month; only that month is read."""
    result = _sql(MONTHLY_VOLUME_SQL, transactions=transactions)
    context.add_output_metadata(
        {"preview": md.table(result.slice(0, 10).to_pylist(), columns=result.column_names)}
    )
    return result


DEFAULT_RATE_SQL = (
    "SELECT c.segment, CASE WHEN a.debt_to_income >= 0.4 THEN 'high' ELSE 'normal' END "
    "AS dti_band, count(*) AS loans, round(avg(a.defaulted::INT), 4) AS default_rate, "
    "round(median(c.annual_income)) AS median_income "
    "FROM applications a JOIN customers c USING (customer_id) GROUP BY ALL ORDER BY ALL"
)
DEFAULT_RATE_INS = {
    # Only non-PII columns leave the EU core-banking silo.
    "customers": dg.AssetIn(
        key=["eu_core_banking", "customers"],
        metadata={"columns": ["customer_id", "segment", "country", "annual_income"]},
    ),
    "applications": dg.AssetIn(
        key=["loans_warehouse", "applications"],
        metadata={"columns": ["customer_id", "debt_to_income", "defaulted"]},
    ),
}


@dg.asset(
    group_name="credit_analytics",
    kinds={"duckdb"},
    ins=DEFAULT_RATE_INS,
    code_version=code_version(DEFAULT_RATE_SQL, DEFAULT_RATE_INS),
)
def default_rate_by_segment(customers: pa.Table, applications: pa.Table) -> pa.Table:
    """Loan default rate by customer segment and debt-to-income band."""
    return _sql(DEFAULT_RATE_SQL, customers=customers, applications=applications)


SAR_RATE_SQL = (
    "WITH s AS (SELECT customer_id, count(*) AS deposits FROM near_threshold GROUP BY 1) "
    "SELECT coalesce(s.deposits, 0) >= 2 AS structuring, count(*) AS cases, "
    "round(avg(c.sar_filed::INT), 4) AS sar_rate "
    "FROM cases c LEFT JOIN s USING (customer_id) GROUP BY 1 ORDER BY 1"
)
SAR_RATE_INS = {
    "cases": dg.AssetIn(
        key=["compliance_store", "aml_cases"],
        metadata={"columns": ["customer_id", "sar_filed"]},
    ),
    "near_threshold": dg.AssetIn(
        key=["us_payments", "transactions"],
        metadata={
            "columns": ["customer_id", "amount"],
            "where": f"channel = 'cash_deposit' AND amount >= {REPORTING_THRESHOLD - STRUCTURING_BAND}"
            f" AND amount < {REPORTING_THRESHOLD}",
        },
    ),
}


@dg.asset(
    group_name="aml_analytics",
    kinds={"duckdb"},
    ins=SAR_RATE_INS,
    code_version=code_version(SAR_RATE_SQL, SAR_RATE_INS),
)
def sar_rate_by_structuring(cases: pa.Table, near_threshold: pa.Table) -> pa.Table:
    """SAR rate among AML cases with and without cash deposits just under the threshold."""
    return _sql(SAR_RATE_SQL, cases=cases, near_threshold=near_threshold)


DEMO_ASSETS = [monthly_volume_by_country, default_rate_by_segment, sar_rate_by_structuring]
