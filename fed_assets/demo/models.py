"""The demo's models: credit risk, SAR triage, a narrative LM, regional and federated credit models.

All start from the offline GPT-2 (no hub needed) and are small enough to materialise in seconds
on two CPU cores; each beats its trivial baseline on held-out rows (tests/demo/test_models_*.py).
"""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from fed_assets.catalog import Catalog
from fed_assets.demo.federated import COMPUTE_KEY
from fed_assets.train.asset import fine_tuned_model
from fed_assets.train.config import TrainingConfig
from fed_assets.train.federated_asset import federated_model
from fed_assets.train.per_silo import per_silo_model

# Two layers of width 64 over a 64-token context: the demo's rows render to about 55 tokens.
DEMO_CONFIG = TrainingConfig(
    epochs=3,
    batch_size=16,
    learning_rate=3e-3,
    max_length=64,
    n_layer=2,
    n_embd=64,
    n_head=2,
    vocab_size=512,
)
# The columns that carry the planted default signal: fewer tokens per row train faster and, on
# 1,000 rows, better than all ten columns (measured: ROC AUC 0.74 against 0.58 with LoRA).
CREDIT_FEATURES = ["annual_income", "returned_share", "max_debt_to_income"]
SAR_FEATURES = ["narrative", "near_threshold_deposits", "high_risk_payments", "high_risk_amount"]
REGIONAL_BOOKS = {"de_loans": "loan_book", "fr_loans": "loan_book", "es_loans": "loan_book"}
LOAN_FEATURES = ["income", "debt_to_income", "late_payments", "term_months", "purpose"]
# COMPUTE_KEY, the compute estate's resource key: every model trains on the pool it chooses
# (per-silo partitions and federated sites within their own silo's residency) and records
# placement, reasons and estimate against actual.
# Where the federated credit model's weights are averaged: the bank's EU model hub.
AGGREGATOR_REGION = "eu"


def demo_models(
    catalog: Catalog, datasets: dict[str, dg.AssetsDefinition]
) -> list[dg.AssetsDefinition]:
    """The model assets over ``credit_features`` and ``aml_training_set`` (by name) and the silos."""
    credit = fine_tuned_model(
        "credit_risk_model",
        dataset=datasets["credit_features"],
        task="sequence_classification",
        label="defaulted",
        features=CREDIT_FEATURES,
        catalog=catalog,
        config=DEMO_CONFIG.replace(epochs=6),
        group_name="models",
        compute=COMPUTE_KEY,
        description="Default risk per applicant from credit_features "
        "(TabLLM-style rendered rows, LoRA on the offline GPT-2).",
    )
    sar = fine_tuned_model(
        "sar_model",
        dataset=datasets["aml_training_set"],
        task="sequence_classification",
        label="sar_filed",
        features=SAR_FEATURES,
        catalog=catalog,
        config=DEMO_CONFIG.replace(max_length=96, epochs=4),
        group_name="models",
        compute=COMPUTE_KEY,
        description="Whether an AML case leads to a SAR, from its narrative and payment patterns.",
    )
    narratives = fine_tuned_model(
        "narrative_lm",
        dataset="compliance_store.aml_cases",
        task="causal_lm",
        text="narrative",
        catalog=catalog,
        config=DEMO_CONFIG.replace(epochs=4, learning_rate=5e-3),
        group_name="models",
        compute=COMPUTE_KEY,
        description="Drafts AML case narratives; trained on the pool the compute estate chooses "
        "among the regions the compliance store allows (EU, UK).",
    )
    regional = per_silo_model(
        "regional_credit_models",
        datasets=REGIONAL_BOOKS,
        task="sequence_classification",
        label="defaulted",
        features=LOAN_FEATURES,
        catalog=catalog,
        config=DEMO_CONFIG,
        group_name="models",
        compute=COMPUTE_KEY,
        description="One credit model per country, each trained in its "
        "own silo on its own loan book; partitions train simultaneously.",
    )
    federated = federated_model(
        "federated_credit_model",
        datasets=REGIONAL_BOOKS,
        catalog=catalog,
        label="defaulted",
        features=LOAN_FEATURES,
        rounds=3,
        aggregator_region=AGGREGATOR_REGION,
        config=DEMO_CONFIG,
        group_name="models",
        compute=COMPUTE_KEY,
        description="One credit model across the "
        "three countries by FedAvg: loan rows stay in their silos, only adapters move.",
    )
    return [credit, sar, narratives, regional, federated, applicant_scores]


@dg.asset(
    group_name="models",
    kinds={"pytorch"},
    ins={
        "model": dg.AssetIn(key="credit_risk_model"),
        "applicants": dg.AssetIn(key="credit_features"),
    },
)
def applicant_scores(context, model, applicants: pa.Table) -> pa.Table:
    """Every applicant scored by the credit-risk model (stored in the results store)."""
    proba = model.predict_proba(applicants)
    positive = model.classes.index(True)
    scores = pa.table(
        {
            "customer_id": applicants["customer_id"],
            "p_default": pa.array(proba[:, positive]),
            "predicted_default": pa.array(proba.argmax(axis=1) == positive),
        }
    )
    context.add_output_metadata(
        {"dagster/row_count": scores.num_rows, "mean p_default": float(proba[:, positive].mean())}
    )
    return scores
