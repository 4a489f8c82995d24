"""Deterministic generator of the demo's finance silos, with planted signal for later models.

A bank's data lives with four teams in three regions:

- ``eu_core_banking`` (DuckDB, EU): ``customers`` with PII (name, email, IBAN, birth date);
- ``us_payments`` (Parquet lake, US): ``transactions`` partitioned by month (``month=YYYY-MM``);
- ``loans_warehouse`` (DuckDB, UK): ``applications`` with outcomes (``defaulted``);
- ``compliance_store`` (SQLite, EU): ``aml_cases`` with free-text narratives and SAR labels.

Three independent regional loan books for the same credit task, each a country's own silo:
``de_loans`` (DuckDB, DE), ``fr_loans`` (SQLite, FR, ``export: none``) and ``es_loans``
(Parquet, ES), each with a ``loan_book`` table; per-silo and federated models train on them.

Planted signal: default risk rises with debt-to-income and returned payments and falls with
income; SARs follow structuring (cash deposits just under the 10,000 reporting threshold),
payments to high-risk counterparties, and the narrative's wording. The same seed and scale give
byte-identical tables.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Customers per unit of scale: 2,000 gives ~70k transactions, enough for models to beat chance
# clearly while seeding in about a second.
CUSTOMERS_PER_SCALE = 2_000
# Loans per regional book per unit of scale: enough for a tiny model to beat chance on held-out
# rows while each regional model trains in seconds.
LOANS_PER_REGION = 600
# The regional books: silo name → (country, shift of the default rate's log-odds, income level).
REGIONS = {
    "de_loans": ("DE", 0.0, 10.7),
    "fr_loans": ("FR", 0.2, 10.6),
    "es_loans": ("ES", -0.2, 10.3),
}
# Cash deposits at or above this amount are reported to the regulator; structuring stays below.
REPORTING_THRESHOLD = 10_000.0
YEAR = 2025

EU_COUNTRIES = ["DE", "FR", "NL", "ES", "IT", "IE", "PL", "SE"]
COUNTERPARTY_COUNTRIES = ["US", "GB", "DE", "FR", "CN", "AE", "PA", "KY", "RU", "NG", "CH", "SG"]
HIGH_RISK = {"PA", "KY", "RU", "NG"}
FIRST_NAMES = [
    "Anna",
    "Ben",
    "Chloé",
    "Dario",
    "Eva",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Katarzyna",
    "Luca",
    "Marta",
    "Niels",
    "Olga",
    "Pierre",
    "Rosa",
    "Sven",
    "Tomás",
    "Zoë",
]
LAST_NAMES = [
    "Müller",
    "Dubois",
    "de Vries",
    "García",
    "Rossi",
    "Murphy",
    "Nowak",
    "Lindqvist",
    "Schmidt",
    "Martin",
    "Jansen",
    "López",
    "Bianchi",
    "Kelly",
    "Kowalski",
    "Berg",
]
SUSPICIOUS_PHRASES = [
    "multiple cash deposits just below the reporting threshold",
    "funds moved rapidly to an offshore account",
    "customer could not explain the source of funds",
    "transfers to a shell company with no apparent business purpose",
    "structured deposits across several branches on the same day",
]
ROUTINE_PHRASES = [
    "activity consistent with the customer's stated profile",
    "salary payments and regular household spending",
    "large transfer explained by a documented property purchase",
    "alert triggered by a one-off payment to a known supplier",
    "customer provided invoices supporting the payments",
]
NEUTRAL_PHRASES = [
    "reviewed by the second-line team",
    "account opened more than two years ago",
    "case escalated after automated monitoring",
    "counterparty details verified",
]


@dataclass(frozen=True)
class DemoPaths:
    """Where the embedded demo silos live under one data folder."""

    root: Path

    @property
    def core_banking(self) -> Path:
        return self.root / "core_banking.duckdb"

    @property
    def payments(self) -> Path:
        return self.root / "payments_lake"

    @property
    def loans(self) -> Path:
        return self.root / "loans_warehouse.duckdb"

    @property
    def compliance(self) -> Path:
        return self.root / "compliance.sqlite"

    def regional(self, silo: str) -> Path:
        """Where a regional loan book lives (a DuckDB file, a SQLite file or a Parquet folder)."""
        return (
            self.root
            / {
                "de_loans": "de_loans.duckdb",
                "fr_loans": "fr_loans.sqlite",
                "es_loans": "es_loans_lake",
            }[silo]
        )

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.json"

    @property
    def results(self) -> Path:
        return self.root / "results"


def default_data_dir() -> Path:
    """``$FED_ASSETS_DATA``, else ``./data/demo``."""
    return Path(os.environ.get("FED_ASSETS_DATA", Path.cwd() / "data" / "demo")).resolve()


def generate(root: Path, *, scale: float = 1.0, seed: int = 7) -> dict[str, int]:
    """Write the four demo silos under ``root`` (replacing any earlier ones).

    Returns:
        table name → rows written.
    """
    rng = np.random.default_rng(seed)
    paths = DemoPaths(Path(root))
    paths.root.mkdir(parents=True, exist_ok=True)
    customers = _customers(rng, max(int(CUSTOMERS_PER_SCALE * scale), 50))
    transactions, behaviour = _transactions(rng, customers)
    applications = _applications(rng, customers, behaviour)
    cases = _cases(rng, customers, behaviour)

    _write_duckdb(paths.core_banking, {"customers": customers})
    _write_duckdb(paths.loans, {"applications": applications})
    _write_parquet_lake(paths.payments, "transactions", transactions)
    _write_sqlite(paths.compliance, "aml_cases", cases)
    # The regional books draw from their own generator, so the tables above stay as they were.
    regional_rng = np.random.default_rng([seed, 1])
    books = {
        silo: _loan_book(regional_rng, max(int(LOANS_PER_REGION * scale), 60), *spec)
        for silo, spec in REGIONS.items()
    }
    _write_duckdb(paths.regional("de_loans"), {"loan_book": books["de_loans"]})
    _write_sqlite(paths.regional("fr_loans"), "loan_book", books["fr_loans"])
    _write_parquet_folder(paths.regional("es_loans"), "loan_book", books["es_loans"])
    paths.catalog.unlink(missing_ok=True)  # the table list may have changed: rediscover
    return {
        "customers": customers.num_rows,
        "transactions": transactions.num_rows,
        "applications": applications.num_rows,
        "aml_cases": cases.num_rows,
        **{f"{silo}.loan_book": book.num_rows for silo, book in books.items()},
    }


def _customers(rng: np.random.Generator, n: int) -> pa.Table:
    ids = np.arange(1, n + 1)
    first = rng.choice(FIRST_NAMES, n)
    last = rng.choice(LAST_NAMES, n)
    income = np.round(rng.lognormal(mean=10.6, sigma=0.5, size=n), -2)
    birth = [dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 18_000, n)]
    created = [
        dt.datetime(2015, 1, 1) + dt.timedelta(minutes=int(m))
        for m in rng.integers(0, 9 * 365 * 1440, n)
    ]
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "full_name": [f"{a} {b}" for a, b in zip(first, last, strict=True)],
            "email": [f"{a.lower()}.{i}@example.eu" for a, i in zip(first, ids, strict=True)],
            "iban": [f"DE{rng.integers(10, 99)}{i:018d}" for i in ids],
            "date_of_birth": pa.array(birth, pa.date32()),
            "country": rng.choice(EU_COUNTRIES, n),
            "annual_income": income,
            "employment_years": rng.integers(0, 40, n).astype(np.int32),
            "segment": rng.choice(["retail", "premium", "sme"], n, p=[0.7, 0.2, 0.1]),
            "created_at": pa.array(created, pa.timestamp("us")),
        }
    )


def _transactions(rng: np.random.Generator, customers: pa.Table):
    n = customers.num_rows
    ids = customers["customer_id"].to_numpy()
    structurer = rng.random(n) < 0.06  # hidden: deposits just under the reporting threshold
    high_risk_user = rng.random(n) < 0.08  # hidden: pays high-risk counterparties often
    late_payer = rng.random(n) < 0.15  # hidden: payments bounce
    per_customer = rng.poisson(30, n) + 5
    cust = np.repeat(ids, per_customer)
    idx = np.repeat(np.arange(n), per_customer)
    m = len(cust)
    seconds = rng.integers(0, 365 * 86_400, m)
    booked = np.datetime64(f"{YEAR}-01-01T00:00:00") + seconds.astype("timedelta64[s]")
    channel = rng.choice(
        ["card", "wire", "direct_debit", "cash_deposit"], m, p=[0.55, 0.2, 0.15, 0.1]
    )
    amount = np.round(rng.lognormal(4.0, 1.1, m), 2)
    structuring = structurer[idx] & (rng.random(m) < 0.35)
    channel = np.where(structuring, "cash_deposit", channel)
    amount = np.where(
        structuring, np.round(rng.uniform(9_000, REPORTING_THRESHOLD - 1, m), 2), amount
    )
    risky = np.array(sorted(HIGH_RISK))
    safe = np.array([c for c in COUNTERPARTY_COUNTRIES if c not in HIGH_RISK])
    to_risky = rng.random(m) < np.where(high_risk_user[idx], 0.4, 0.02)
    country = np.where(to_risky, rng.choice(risky, m), rng.choice(safe, m))
    amount = np.where(to_risky & high_risk_user[idx], amount * 20, amount).round(2)
    returned = rng.random(m) < np.where(late_payer[idx], 0.18, 0.01)
    order = np.argsort(seconds, kind="stable")
    table = pa.table(
        {
            "txn_id": pa.array(np.arange(1, m + 1), pa.int64()),
            "customer_id": pa.array(cust[order], pa.int64()),
            "booked_at": pa.array(booked[order].astype("datetime64[us]"), pa.timestamp("us")),
            "amount": amount[order],
            "currency": np.where(country[order] == "US", "USD", "EUR"),
            "channel": channel[order],
            "counterparty_country": country[order],
            "counterparty_risk": np.where(np.isin(country[order], risky), "high", "standard"),
            "status": np.where(returned[order], "returned", "settled"),
        }
    )
    behaviour = {
        "structurer": structurer,
        "high_risk_user": high_risk_user,
        "returned_share": np.bincount(idx, weights=returned, minlength=n) / per_customer,
    }
    return table, behaviour


def _applications(rng: np.random.Generator, customers: pa.Table, behaviour: dict) -> pa.Table:
    n = customers.num_rows
    applicant = rng.random(n) < 0.6
    idx = np.flatnonzero(applicant)
    k = len(idx)
    income = customers["annual_income"].to_numpy()[idx]
    amount = np.round(rng.uniform(2_000, 60_000, k), -2)
    dti = np.round(np.clip(rng.normal(0.3, 0.12, k) + amount / income / 10, 0.01, 0.95), 3)
    logit = (
        -2.2
        + 5.0 * (dti - 0.3)
        - 0.9 * (np.log(income) - 10.6)
        + 14.0 * behaviour["returned_share"][idx]
    )
    defaulted = rng.random(k) < 1 / (1 + np.exp(-logit))
    applied = [dt.date(2023, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 700, k)]
    return pa.table(
        {
            "application_id": pa.array(np.arange(1, k + 1), pa.int64()),
            "customer_id": pa.array(customers["customer_id"].to_numpy()[idx], pa.int64()),
            "applied_on": pa.array(applied, pa.date32()),
            "amount": amount,
            "term_months": rng.choice([12, 24, 36, 48, 60], k).astype(np.int32),
            "debt_to_income": dti,
            "purpose": rng.choice(
                ["car", "home_improvement", "debt_consolidation", "business", "education"], k
            ),
            "defaulted": defaulted,
        }
    )


def _cases(rng: np.random.Generator, customers: pa.Table, behaviour: dict) -> pa.Table:
    n = customers.num_rows
    suspicious = behaviour["structurer"] | behaviour["high_risk_user"]
    flagged = suspicious | (rng.random(n) < 0.12)
    idx = np.flatnonzero(flagged)
    sar = suspicious[idx] & (rng.random(len(idx)) < 0.85) | (
        ~suspicious[idx] & (rng.random(len(idx)) < 0.05)
    )
    narratives = []
    for is_sar in sar:
        pool = (
            SUSPICIOUS_PHRASES
            if (is_sar and rng.random() < 0.8) or (not is_sar and rng.random() < 0.1)
            else ROUTINE_PHRASES
        )
        parts = [str(rng.choice(pool)), str(rng.choice(NEUTRAL_PHRASES))]
        if rng.random() < 0.5:
            parts.append(str(rng.choice(pool)))
        rng.shuffle(parts)
        narratives.append("; ".join(parts).capitalize() + ".")
    opened = [
        dt.datetime(YEAR, 1, 1) + dt.timedelta(hours=int(h))
        for h in rng.integers(0, 365 * 24, len(idx))
    ]
    return pa.table(
        {
            "case_id": pa.array(np.arange(1, len(idx) + 1), pa.int64()),
            "customer_id": pa.array(customers["customer_id"].to_numpy()[idx], pa.int64()),
            "opened_at": pa.array(opened, pa.timestamp("us")),
            "narrative": narratives,
            "sar_filed": pa.array(sar, pa.bool_()),
        }
    )


def _loan_book(
    rng: np.random.Generator, n: int, country: str, shift: float, income_level: float
) -> pa.Table:
    """One country's loan book: default risk from debt-to-income, late payments and income."""
    income = np.round(rng.lognormal(income_level, 0.45, n), -2)
    dti = np.round(np.clip(rng.normal(0.33, 0.12, n), 0.01, 0.95), 3)
    late = rng.poisson(0.6, n).astype(np.int32)
    logit = -1.4 + shift + 9.0 * (dti - 0.33) - 1.5 * (np.log(income) - income_level) + 1.0 * late
    return pa.table(
        {
            "loan_id": pa.array(np.arange(1, n + 1), pa.int64()),
            "country": [country] * n,
            "income": income,
            "debt_to_income": dti,
            "late_payments": late,
            "term_months": rng.choice([12, 24, 36, 60], n).astype(np.int32),
            "purpose": rng.choice(["car", "home", "business", "education"], n),
            "defaulted": pa.array(rng.random(n) < 1 / (1 + np.exp(-logit)), pa.bool_()),
        }
    )


def _replace(path: Path, write) -> None:
    """Build ``path`` under a temporary name, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    else:
        tmp.unlink(missing_ok=True)
    write(tmp)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    Path(str(path) + ".wal").unlink(missing_ok=True)
    os.replace(tmp, path)


def _write_duckdb(path: Path, tables: dict[str, pa.Table]) -> None:
    def write(tmp: Path) -> None:
        with duckdb.connect(str(tmp)) as con:
            for name, table in tables.items():
                con.register("src", table)
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM src')
                con.unregister("src")
            con.execute("CHECKPOINT")

    _replace(path, write)


def _write_sqlite(path: Path, name: str, table: pa.Table) -> None:
    decl = {
        pa.int64(): "INTEGER",
        pa.int32(): "INTEGER",
        pa.float64(): "REAL",
        pa.bool_(): "BOOLEAN",
        pa.timestamp("us"): "TIMESTAMP",
    }

    def write(tmp: Path) -> None:
        cols = ", ".join(f'"{f.name}" {decl.get(f.type, "TEXT")}' for f in table.schema)
        with sqlite3.connect(tmp) as con:
            con.execute(f'CREATE TABLE "{name}" ({cols})')
            rows = [
                tuple(v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v for v in r.values())
                for r in table.to_pylist()
            ]
            marks = ", ".join("?" * table.num_columns)
            con.executemany(f'INSERT INTO "{name}" VALUES ({marks})', rows)
        con.close()

    _replace(path, write)


def _write_parquet_folder(root: Path, name: str, table: pa.Table) -> None:
    def write(tmp: Path) -> None:
        (tmp / name).mkdir(parents=True)
        pq.write_table(table, tmp / name / "part-0.parquet")

    _replace(root, write)


def _write_parquet_lake(root: Path, name: str, table: pa.Table) -> None:
    months = pa.compute.strftime(table["booked_at"], format="%Y-%m")
    with_month = table.append_column("month", months)

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        for month in sorted(set(months.to_pylist())):
            part = with_month.filter(pa.compute.equal(with_month["month"], month)).drop_columns(
                ["month"]
            )
            folder = tmp / name / f"month={month}"
            folder.mkdir(parents=True)
            pq.write_table(part, folder / "part-0.parquet", row_group_size=50_000)

    _replace(root, write)
