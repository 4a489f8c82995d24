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
    """A job of the demo's regional models (for ``dagster.reconstructable``: its steps run in
    their own processes, as a launched run's do)."""
    import dagster as dg

    from fed_assets.demo.definitions import demo_definitions

    job = dg.define_asset_job("regional_credit_models_job", selection=["regional_credit_models"])
    defs = dg.Definitions.merge(demo_definitions(), dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("regional_credit_models_job")


def run_partition(silo: str) -> int:
    """One run of the regional models' ``silo`` partition in ``$DAGSTER_HOME``'s instance
    (multiprocess executor), as a run launched from the UI; the exit status."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(regional_job),
            instance=instance,
            tags={"dagster/partition": silo},
        )
    return 0 if result.success else 1


def per_silo_wall(root: Path, pool_limit: int) -> dict[str, float]:
    """Wall seconds for the three regional partitions as three simultaneous runs (one process
    each, multiprocess executor, ``training`` pool limited to ``pool_limit``) against one after
    another."""
    import os
    import subprocess
    import sys

    def runs(silos: list[str], home: Path) -> bool:
        home.mkdir()
        (home / "dagster.yaml").write_text(
            "telemetry:\n  enabled: false\n"
            f"concurrency:\n  pools:\n    default_limit: {pool_limit}\n"
        )
        import dagster as dg

        # The instance's storage made once, here: runs making it at the same time race.
        dg.DagsterInstance.from_config(str(home)).dispose()
        env = {**os.environ, "FED_ASSETS_DATA": str(root), "DAGSTER_HOME": str(home)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.training", "--run-partition", s],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for s in silos
        ]
        return all(p.wait() == 0 for p in procs)

    silos = sorted(REGIONAL_BOOKS)
    base = Path(tempfile.mkdtemp(prefix="fed-bench-home-"))
    start = time.perf_counter()
    together_ok = runs(silos, base / "together")
    together = time.perf_counter() - start
    start = time.perf_counter()
    sequential_ok = all(runs([s], base / f"alone-{s}") for s in silos)
    sequential = time.perf_counter() - start
    return {"together": together, "sequential": sequential, "ok": together_ok and sequential_ok}


# The LM classifier's settings on the credit task: 20 quantile bins keep more of each number's
# order than 5 (measured: ROC AUC 0.723 at 5 bins, 0.753 at 20, same 6 epochs), and 12 epochs
# let the embeddings of 20 bins per column settle (0.800 at 12 epochs; 20 epochs fell back to
# 0.752). Logistic regression on one-hot bins of the same columns reaches 0.76-0.78: the bins,
# not the LM, were the ceiling.
CREDIT_CONFIG = DEMO_CONFIG.replace(epochs=12, bins=20)
# Held-out splits the credit task is measured on: about 240 held-out rows give one ROC AUC a
# standard error near 0.03, more than the goal's 0.02, so the table shows the mean of several.
SPLIT_SEEDS = (0, 1, 2)


def credit_task(credit: pa.Table, config) -> dict:
    """Mean held-out ROC AUC of the LM classifier and of logistic regression over splits."""
    found = [
        fine_tune(
            credit,
            task="sequence_classification",
            label="defaulted",
            features=CREDIT_FEATURES,
            config=config.replace(seed=seed),
        ).metrics
        for seed in SPLIT_SEEDS
    ]
    return {
        "model": float(np.mean([m["model"]["roc_auc"] for m in found])),
        "logistic_regression": float(np.mean([m["logistic_regression"]["roc_auc"] for m in found])),
        "per split": ", ".join(
            f"{m['model']['roc_auc']:.3f}/{m['logistic_regression']['roc_auc']:.3f}" for m in found
        ),
    }


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
    parser.add_argument("--run-partition", help="(internal) run one regional partition and exit")
    args = parser.parse_args()
    if args.run_partition:
        raise SystemExit(run_partition(args.run_partition))
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
        bins = credit_task(credit, CREDIT_CONFIG)
        gap = bins["logistic_regression"] - bins["model"]
        row(
            "ROC AUC LM classifier, credit task",
            f"{bins['model']:.4f}",
            f"logistic regression {bins['logistic_regression']:.4f} (mean of splits "
            f"{', '.join(map(str, SPLIT_SEEDS))}; per split {bins['per split']})",
            "within 0.02",
            gap <= 0.02,
        )
        row(
            "ROC AUC numbers as quantile bins", f"{bins['model']:.4f}", f"{CREDIT_CONFIG.bins} bins"
        )
        digits = credit_task(credit, CREDIT_CONFIG.replace(numbers="digits"))
        row(
            "ROC AUC numbers as digits",
            f"{digits['model']:.4f}",
            f"per split {digits['per split']}",
        )
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
            f"one after another {walls['sequential']:.1f} s (pool limit 3, a process per run, "
            f"multiprocess executor){'' if walls['ok'] else '; A RUN FAILED'}",
        )


if __name__ == "__main__":
    main()
