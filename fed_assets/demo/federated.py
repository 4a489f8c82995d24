"""The demo's federated query assets: training sets for the credit and AML models, read in place.

Each asset's embedded engine runs in the region the compute estate chooses for it
(``choose_engine_region``: allowed by every input's policy, moving the fewest dollars and bytes):
when the code loads (from the catalog snapshot, to check the query there) and again at each run,
from the ``compute`` resource's figures, which also price the planner's routes; without an
estate, in the UK (``DEMO_ENGINE_REGION``). Customer attributes may move to the EU or
UK from the EU core-banking silo, its PII columns may not (the silo's policy), and the compliance
store allows EU and UK only.
"""

from __future__ import annotations

import dagster as dg

from fed_assets.catalog import Catalog
from fed_assets.demo.assets import STRUCTURING_BAND
from fed_assets.demo.generate import REPORTING_THRESHOLD
from fed_assets.errors import SiloUnreachableError
from fed_assets.query.asset import federated_asset

# Where the credit-risk and financial-crime teams' compute runs: London.
DEMO_ENGINE_REGION = "uk"
# The compute estate's resource key (fed_assets/demo/definitions.py).
COMPUTE_KEY = "compute"

CREDIT_FEATURES_SQL = """
WITH payments AS (
    SELECT customer_id,
           count(*) AS txn_count,
           round(sum(amount), 2) AS txn_total,
           avg(CASE WHEN status = 'returned' THEN 1.0 ELSE 0.0 END) AS returned_share,
           sum(CASE WHEN channel = 'cash_deposit' THEN 1 ELSE 0 END) AS cash_deposits
    FROM us_payments.transactions
    GROUP BY customer_id
), loans AS (
    SELECT customer_id,
           count(*) AS applications,
           max(debt_to_income) AS max_debt_to_income,
           bool_or(defaulted) AS defaulted
    FROM loans_warehouse.applications
    GROUP BY customer_id
)
SELECT c.customer_id, c.segment, c.country, c.annual_income, c.employment_years,
       coalesce(p.txn_count, 0) AS txn_count,
       coalesce(p.txn_total, 0) AS txn_total,
       coalesce(p.returned_share, 0) AS returned_share,
       coalesce(p.cash_deposits, 0) AS cash_deposits,
       l.applications, l.max_debt_to_income, l.defaulted
FROM eu_core_banking.customers AS c
JOIN loans AS l ON l.customer_id = c.customer_id
LEFT JOIN payments AS p ON p.customer_id = c.customer_id
ORDER BY c.customer_id
"""

AML_TRAINING_SET_SQL = f"""
WITH patterns AS (
    SELECT customer_id,
           count(*) AS txn_count,
           sum(CASE WHEN channel = 'cash_deposit'
                     AND amount >= {REPORTING_THRESHOLD - STRUCTURING_BAND}
                     AND amount < {REPORTING_THRESHOLD} THEN 1 ELSE 0 END)
               AS near_threshold_deposits,
           sum(CASE WHEN counterparty_risk = 'high' THEN 1 ELSE 0 END) AS high_risk_payments,
           round(sum(CASE WHEN counterparty_risk = 'high' THEN amount ELSE 0 END), 2)
               AS high_risk_amount
    FROM us_payments.transactions
    GROUP BY customer_id
)
SELECT a.case_id, a.customer_id, a.opened_at, a.narrative, a.sar_filed,
       coalesce(p.txn_count, 0) AS txn_count,
       coalesce(p.near_threshold_deposits, 0) AS near_threshold_deposits,
       coalesce(p.high_risk_payments, 0) AS high_risk_payments,
       coalesce(p.high_risk_amount, 0) AS high_risk_amount
FROM compliance_store.aml_cases AS a
LEFT JOIN patterns AS p ON p.customer_id = a.customer_id
ORDER BY a.case_id
"""


def federated_demo_assets(catalog: Catalog, estate=None) -> list[dg.AssetsDefinition]:
    """``credit_features`` and ``aml_training_set``, checked against ``catalog`` at load.

    Args:
        estate: a ``resources.compute.ComputeEstate`` that places each asset's engine; ``None``
            runs both in ``DEMO_ENGINE_REGION``.
    """

    def placed(sql: str) -> dict:
        if estate is None:
            return {"engine_region": DEMO_ENGINE_REGION}
        from fed_assets.placement import choose_engine_region

        try:
            chosen = choose_engine_region(sql, catalog, estate)
        except SiloUnreachableError as err:  # never snapshotted and down: placed at run time
            return {
                "engine_region": DEMO_ENGINE_REGION,
                "compute": COMPUTE_KEY,
                "metadata": {"placement/engine region at load": f"default, not chosen: {err}"},
            }
        reasons = "\n".join(f"- {r}" for r in chosen.reasons)
        return {
            "engine_region": chosen.region,
            "compute": COMPUTE_KEY,
            "metadata": {"placement/engine region at load": dg.MetadataValue.md(reasons)},
        }

    return [
        federated_asset(
            "credit_features",
            CREDIT_FEATURES_SQL,
            catalog=catalog,
            group_name="credit_analytics",
            **placed(CREDIT_FEATURES_SQL),
            description="Per loan applicant: non-PII customer attributes (EU), transaction "
            "aggregates (US) and the loan outcome (UK). No PII column leaves the EU silo.",
        ),
        federated_asset(
            "aml_training_set",
            AML_TRAINING_SET_SQL,
            catalog=catalog,
            group_name="aml_analytics",
            **placed(AML_TRAINING_SET_SQL),
            description="Per AML case: narrative and SAR label (compliance store) with the "
            "customer's transaction patterns: near-threshold cash deposits, payments to "
            "high-risk counterparties.",
        ),
    ]
