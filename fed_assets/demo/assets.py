"""Demo assets that read the finance silos in place (lineage starts at the silo tables)."""

from __future__ import annotations

import dagster as dg
import duckdb
import pyarrow as pa

from fed_assets.demo.generate import REPORTING_THRESHOLD, YEAR

MONTHLY = dg.MonthlyPartitionsDefinition(start_date=f"{YEAR}-01-01", end_date=f"{YEAR + 1}-01-01")
# Cash deposits this close under the reporting threshold count as possible structuring.
STRUCTURING_BAND = 1_000.0


def _sql(query: str, **tables: pa.Table) -> pa.Table:
    """Run ``query`` in an embedded DuckDB over Arrow tables named by keyword."""
    with duckdb.connect() as con:
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(query).to_arrow_table()


@dg.asset(
    group_name="payments_analytics",
    partitions_def=MONTHLY,
    kinds={"duckdb"},
    ins={
        "transactions": dg.AssetIn(
            key=["us_payments", "transactions"],
            metadata={
                "columns": ["booked_at", "amount", "counterparty_country", "status"],
                "where": "status = 'settled'",
                "partition_column": "booked_at",
            },
        )
    },
)
def monthly_volume_by_country(context, transactions: pa.Table) -> pa.Table:
    """Settled payment volume per counterparty country for one month; only that month is read."""
    result = _sql(
        "SELECT strftime(booked_at, '%Y-%m') AS month, counterparty_country, "
        "count(*) AS payments, round(sum(amount), 2) AS volume "
        "FROM transactions GROUP BY ALL ORDER BY volume DESC",
        transactions=transactions,
    )
    context.add_output_metadata(
        {"preview": dg.MetadataValue.md(result.slice(0, 10).to_pandas().to_markdown(index=False))}
    )
    return result


@dg.asset(
    group_name="credit_analytics",
    kinds={"duckdb"},
    ins={
        # Only non-PII columns leave the EU core-banking silo.
        "customers": dg.AssetIn(
            key=["eu_core_banking", "customers"],
            metadata={"columns": ["customer_id", "segment", "country", "annual_income"]},
        ),
        "applications": dg.AssetIn(
            key=["loans_warehouse", "applications"],
            metadata={"columns": ["customer_id", "debt_to_income", "defaulted"]},
        ),
    },
)
def default_rate_by_segment(customers: pa.Table, applications: pa.Table) -> pa.Table:
    """Loan default rate by customer segment and debt-to-income band."""
    return _sql(
        "SELECT c.segment, CASE WHEN a.debt_to_income >= 0.4 THEN 'high' ELSE 'normal' END "
        "AS dti_band, count(*) AS loans, round(avg(a.defaulted::INT), 4) AS default_rate, "
        "round(median(c.annual_income)) AS median_income "
        "FROM applications a JOIN customers c USING (customer_id) GROUP BY ALL ORDER BY ALL",
        customers=customers,
        applications=applications,
    )


@dg.asset(
    group_name="aml_analytics",
    kinds={"duckdb"},
    ins={
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
    },
)
def sar_rate_by_structuring(cases: pa.Table, near_threshold: pa.Table) -> pa.Table:
    """SAR rate among AML cases with and without cash deposits just under the threshold."""
    return _sql(
        "WITH s AS (SELECT customer_id, count(*) AS deposits FROM near_threshold GROUP BY 1) "
        "SELECT coalesce(s.deposits, 0) >= 2 AS structuring, count(*) AS cases, "
        "round(avg(c.sar_filed::INT), 4) AS sar_rate "
        "FROM cases c LEFT JOIN s USING (customer_id) GROUP BY 1 ORDER BY 1",
        cases=cases,
        near_threshold=near_threshold,
    )


DEMO_ASSETS = [monthly_volume_by_country, default_rate_by_segment, sar_rate_by_structuring]
