"""The demo's quality gates: a great-expectations suite and a drift gate on each training set."""

from __future__ import annotations

import dagster as dg

from fed_assets.quality import DatasetSuite, drift_check, quality_check

# What a credit-scoring training set must look like: one row per applicant, incomes and ratios
# in range, and a default rate a classifier can learn from (the generator plants about 15 %).
CREDIT_SUITE = DatasetSuite(
    name="credit_features",
    min_rows=50,
    not_null=("customer_id", "annual_income", "max_debt_to_income", "defaulted"),
    ranges={
        "annual_income": (0.0, None),
        "returned_share": (0.0, 1.0),
        "max_debt_to_income": (0.0, 5.0),
    },
    unique=("customer_id",),
    label="defaulted",
    label_share=(0.01, 0.6),
)
# An AML training set: one row per case with its narrative, and SARs neither absent nor the rule.
AML_SUITE = DatasetSuite(
    name="aml_training_set",
    min_rows=20,
    not_null=("case_id", "customer_id", "narrative", "sar_filed"),
    ranges={"txn_count": (0, None), "high_risk_amount": (0.0, None)},
    unique=("case_id",),
    label="sar_filed",
    label_share=(0.02, 0.9),
)


def demo_gates() -> list[dg.AssetChecksDefinition]:
    """Blocking checks on ``credit_features`` and ``aml_training_set``: suite, then drift."""
    return [
        check
        for dataset, suite in (("credit_features", CREDIT_SUITE), ("aml_training_set", AML_SUITE))
        for check in (quality_check(dataset, suite), drift_check(dataset))
    ]
