"""Training benchmark: our loop against a bare torch loop, federated/per-silo against central.

Run by hand (not in CI): ``.venv/bin/python -m benchmarks.training [--scale 1.0] [--steps 60]
[--parts throughput,credit,regional,concurrency]``.
Seeds the demo data in a temporary folder and prints one Markdown table, each row with its goal
and whether it was met:

- tokens/s of ``fed_assets.train.loop.train`` against a plain torch loop (same model, batches,
  optimiser; goal ≤ 5 % slower), both as a share of this machine's matmul peak (6·N·tokens/s
  over a measured float32 GEMM rate);
- the federated credit model (FedAvg over the three regional silos) against one trained centrally
  on the pooled rows, on the same held-out rows (goal: ROC AUC within 0.02);
- per-silo models against the central one, each on its own silo's held-out rows;
- the LM classifier against logistic regression on the demo's credit task (goal within 0.02);
- numbers as digits against quantile bins on the same task.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from fed_assets.demo.federated import CREDIT_FEATURES_SQL
from fed_assets.demo.generate import DemoPaths, generate
from fed_assets.demo.models import CREDIT_FEATURES, DEMO_CONFIG, LOAN_FEATURES, REGIONAL_BOOKS
from fed_assets.demo.silos import embedded_silos
from fed_assets.query import query
from fed_assets.train.baselines import classification_metrics
from fed_assets.train.data import prepare
from fed_assets.train.federated import train_federated
from fed_assets.train.fine_tune import fine_tune
from fed_assets.train.site import FederationSpec

# GEMM side for the peak measurement: large enough to reach the BLAS kernel's steady rate.
GEMM_N = 1024


def gemm_peak(repeats: int = 20) -> float:
    """Measured float32 matmul FLOP/s (best of ``repeats``)."""
    import torch

    a, b = torch.randn(GEMM_N, GEMM_N), torch.randn(GEMM_N, GEMM_N)
    torch.matmul(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * GEMM_N**3 / best


def throughput(table: pa.Table, steps: int) -> dict[str, float]:
    """Tokens/s of our loop and of a plain torch loop on the same model and batches."""
    import torch

    from fed_assets.train.fine_tune import subset
    from fed_assets.train.loop import batch_tensors, train

    config = DEMO_CONFIG.replace(max_steps=steps, log_every=10**6, warmup_fraction=0.0)
    model = fine_tune(
        table,
        task="sequence_classification",
        label="defaulted",
        features=CREDIT_FEATURES,
        config=config.replace(max_steps=1),
    )
    prepared = prepare(
        table,
        task="sequence_classification",
        label="defaulted",
        text=None,
        template=None,
        features=CREDIT_FEATURES,
        eval_fraction=0.2,
        seed=0,
    )
    data = subset(model.encode(model.renderer.render(prepared.table)), prepared.train, prepared.y)
    ours = train(model.model, data, config, causal=False)

    params = [p for p in model.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    order = np.random.default_rng(0).permutation(len(data.ids))
    per_epoch = math.ceil(len(order) / config.batch_size)
    model.model.train()
    tokens, start = 0, time.perf_counter()
    for step in range(steps):
        index = step % per_epoch
        batch = batch_tensors(
            data, order[index * config.batch_size : (index + 1) * config.batch_size], causal=False
        )
        loss = model.model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    plain = tokens / (time.perf_counter() - start)
    return {"ours": ours.tokens_per_s, "plain": plain, "parameters": model.parameters()["total"]}


def regional(silos, scale_config) -> dict[str, float]:
    """Federated vs central vs per-silo ROC AUC on the same held-out rows of each silo."""
    config = scale_config.replace(numbers="digits")
    books = {
        s: silos[s].scan(silos[s].read_sql(t, columns=["defaulted", *LOAN_FEATURES])).read_all()
        for s, t in REGIONAL_BOOKS.items()
    }
    splits = {
        s: prepare(
            b,
            task="sequence_classification",
            label="defaulted",
            text=None,
            template=None,
            features=LOAN_FEATURES,
            eval_fraction=config.eval_fraction,
            seed=config.seed,
        )
        for s, b in books.items()
    }
    pooled_train = pa.concat_tables(
        [books[s].take(p.train) for s, p in splits.items()], promote_options="permissive"
    )
    held = {s: books[s].take(p.held_out) for s, p in splits.items()}
    pooled_held = pa.concat_tables(list(held.values()), promote_options="permissive")
    y_held = np.array(pooled_held["defaulted"].to_pylist(), dtype=int)
    central = fine_tune(
        pooled_train,
        task="sequence_classification",
        label="defaulted",
        features=LOAN_FEATURES,
        config=config.replace(eval_fraction=0.1),
    )
    spec = FederationSpec(
        features=tuple(LOAN_FEATURES),
        label="defaulted",
        classes=(False, True),
        config=config,
        local_epochs=config.epochs / 3,
    )
    start = time.perf_counter()
    fed = train_federated(
        spec,
        {s: (silos[s], t) for s, t in REGIONAL_BOOKS.items()},
        rounds=3,
        aggregator_region="eu",
    )
    fed_seconds = time.perf_counter() - start

    def auc(model, table, y):
        return classification_metrics(model.predict_proba(table), y)["roc_auc"]

    per_silo, central_per_silo = [], []
    for s, p in splits.items():
        local = fine_tune(
            books[s].take(p.train),
            task="sequence_classification",
            label="defaulted",
            features=LOAN_FEATURES,
            config=config.replace(eval_fraction=0.1),
        )
        y = np.array(held[s]["defaulted"].to_pylist(), dtype=int)
        per_silo.append(auc(local, held[s], y))
        central_per_silo.append(auc(central, held[s], y))
    return {
        "central": auc(central, pooled_held, y_held),
        "federated": auc(fed.model, pooled_held, y_held),
        "federated seconds": fed_seconds,
        "weight bytes": fed.weight_bytes,
        "rows moved": fed.rows_moved,
        "per-silo mean": float(np.mean(per_silo)),
        "central per-silo mean": float(np.mean(central_per_silo)),
    }


def regional_job():
    """The demo's asset job (for ``dagster.reconstructable``: runs its steps in subprocesses)."""
    from fed_assets.demo.definitions import demo_definitions

    return demo_definitions().resolve_implicit_global_asset_job_def()


def per_silo_wall(root: Path, pool_limit: int) -> dict[str, float]:
    """Wall seconds for the three regional partitions as three simultaneous runs (multiprocess
    executor, ``training`` pool limited to ``pool_limit``) against one after another."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import dagster as dg

    os.environ["FED_ASSETS_DATA"] = str(root)
    home = Path(tempfile.mkdtemp(prefix="fed-bench-home-"))
    os.environ["DAGSTER_HOME"] = str(home)
    key = dg.AssetKey("regional_credit_models")
    overrides = {"concurrency": {"pools": {"default_limit": pool_limit}}}

    def one(silo: str, instance) -> bool:
        return dg.execute_job(
            dg.reconstructable(regional_job),
            instance=instance,
            asset_selection=[key],
            tags={"dagster/partition": silo},
        ).success

    silos = sorted(REGIONAL_BOOKS)
    with dg.instance_for_test(overrides=overrides) as instance:
        start = time.perf_counter()
        with ThreadPoolExecutor(len(silos)) as threads:
            together_ok = all(threads.map(lambda s: one(s, instance), silos))
        together = time.perf_counter() - start
    import shutil

    shutil.rmtree(home / "fed-checkpoints", ignore_errors=True)  # the sequential runs train again
    with dg.instance_for_test(overrides=overrides) as instance:
        start = time.perf_counter()
        sequential_ok = all(one(s, instance) for s in silos)
        sequential = time.perf_counter() - start
    return {"together": together, "sequential": sequential, "ok": together_ok and sequential_ok}


PARTS = ("throughput", "credit", "regional", "concurrency")


def row(name: str, value: str, beside: str = "", goal: str = "", met: bool | None = None) -> None:
    """Print one table row at once (a long run shows its results as they come)."""
    mark = "" if met is None else ("met" if met else "missed")
    print(f"| {name} | {value} | {beside} | {goal} | {mark} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {PARTS}")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    root = Path(tempfile.mkdtemp(prefix="fed-train-bench-"))
    generate(root, scale=args.scale, seed=7)
    silos = embedded_silos(DemoPaths(root))
    credit = query(CREDIT_FEATURES_SQL, silos, engine_region="uk").table
    print("| measure | value | beside | goal | met |")
    print("|---|---:|---|---|---|", flush=True)
    if "throughput" in parts:
        peak = gemm_peak()
        rates = throughput(credit, args.steps)
        flops = 6 * rates["parameters"]
        slower = 1 - rates["ours"] / rates["plain"]
        row(
            "tokens/s, our loop",
            f"{rates['ours']:,.0f}",
            f"{slower:+.1%} slower than plain",
            "≤ 5 % slower",
            slower <= 0.05,
        )
        row("tokens/s, plain torch loop", f"{rates['plain']:,.0f}")
        row("matmul peak (float32 GEMM)", f"{peak / 1e9:,.1f} GFLOP/s")
        row(
            "share of peak, our loop",
            f"{flops * rates['ours'] / peak:.2%}",
            f"6·N·tokens/s, N = {rates['parameters']:,}",
        )
        row("share of peak, plain loop", f"{flops * rates['plain'] / peak:.2%}")
    if "credit" in parts:
        bins = fine_tune(
            credit,
            task="sequence_classification",
            label="defaulted",
            features=CREDIT_FEATURES,
            config=DEMO_CONFIG.replace(epochs=6),
        ).metrics
        gap = bins["logistic_regression"]["roc_auc"] - bins["model"]["roc_auc"]
        row(
            "ROC AUC LM classifier, credit task",
            f"{bins['model']['roc_auc']:.4f}",
            f"logistic regression {bins['logistic_regression']['roc_auc']:.4f}",
            "within 0.02",
            gap <= 0.02,
        )
        row("ROC AUC numbers as quantile bins", f"{bins['model']['roc_auc']:.4f}")
        digits = fine_tune(
            credit,
            task="sequence_classification",
            label="defaulted",
            features=CREDIT_FEATURES,
            config=DEMO_CONFIG.replace(epochs=6, numbers="digits"),
        ).metrics
        row("ROC AUC numbers as digits", f"{digits['model']['roc_auc']:.4f}")
    if "regional" in parts:
        fed = regional(silos, DEMO_CONFIG)
        row(
            "ROC AUC federated (3 silos, FedAvg)",
            f"{fed['federated']:.4f}",
            f"central {fed['central']:.4f}; {fed['weight bytes']:,} weight bytes, {fed['rows moved']} rows moved",
            "within 0.02 of central",
            fed["central"] - fed["federated"] <= 0.02,
        )
        row(
            "ROC AUC per-silo (mean)",
            f"{fed['per-silo mean']:.4f}",
            f"central on the same rows {fed['central per-silo mean']:.4f}",
        )
    if "concurrency" in parts:
        walls = per_silo_wall(root, pool_limit=3)
        row(
            "wall s, 3 regional partitions together",
            f"{walls['together']:.1f}",
            f"one after another {walls['sequential']:.1f} s (pool limit 3, multiprocess executor)",
        )


if __name__ == "__main__":
    main()
