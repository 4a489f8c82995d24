"""Placement benchmark: estimated against measured training time on this machine, before and after
calibration, and a federated query whose chosen engine region moves fewer bytes than a hand-set one.

Run by hand: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/placement.py [--quick]``. Prints two
tables. Goal: after calibration on the small sizes, every larger size's estimate is within
±25 % of its measured time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fed_assets.placement import (  # noqa: E402
    History,
    Workload,
    calibrate,
    estimate_training,
    local_pool,
    measure,
)

# Tiny GPT-2 shapes (layers, width): small enough to train in seconds on two cores; the first
# ones calibrate, the rest are unseen sizes the calibrated estimate must predict.
CALIBRATE_ON = [(2, 64), (2, 128), (4, 128), (4, 192)]
HELD_OUT = [(4, 256), (6, 256), (8, 256), (6, 320)]
VOCAB = 1024
SEQ_LEN = 64
BATCH = 8
# Steps per size: each run lasts about a second or more (calibration ignores runs < 0.5 s).
STEPS = (20, 40, 80)
QUICK_STEPS = (10, 30)
GOAL = 0.25
# Repeats per run, the fastest kept: the machine is shared, and a slower repeat measures the
# neighbours rather than the estimate.
REPEATS = 2
# Also time the training engineer's fed_assets.fine_tune (set False where it is absent).
FINE_TUNE = True


def gpt2(n_layer: int, d_model: int):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=SEQ_LEN,
        n_embd=d_model,
        n_layer=n_layer,
        n_head=max(1, d_model // 64),
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config), config


def train(model, steps: int) -> int:
    """A plain torch loop: AdamW, random tokens, causal-LM loss. Returns tokens trained."""
    import torch

    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=generator)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
    return steps * BATCH * SEQ_LEN


def workload_of(model, config, tokens: int) -> Workload:
    params = sum(p.numel() for p in model.parameters())
    return Workload(
        params=params,
        tokens=tokens,
        batch_size=BATCH,
        seq_len=SEQ_LEN,
        n_layer=config.n_layer,
        d_model=config.n_embd,
        n_head=config.n_head,
        vocab=config.vocab_size,
    )


def run_grid(history: History, shapes, steps_grid, *, label=""):
    """Train each shape for each step count; record the fastest of ``REPEATS`` runs (wall and
    CPU time) against the prior estimate. Returns the records."""
    pool = local_pool()
    out = []
    for n_layer, d_model in shapes:
        model, config = gpt2(n_layer, d_model)
        train(model, 2)  # warm-up: allocator and kernels, as a real run's first steps
        for steps in steps_grid:
            workload = workload_of(model, config, steps * BATCH * SEQ_LEN)
            estimate = estimate_training(workload, pool)
            best = None
            for _ in range(REPEATS):  # the fastest of a few: least disturbed by other load
                with measure(pool, estimate, label=f"L{n_layer} d{d_model}", energy="rated") as m:
                    m.tokens = train(model, steps)
                if best is None or m.record.cpu_seconds < best.record.cpu_seconds:
                    best = m
            history.append(best.record)
            out.append((workload, best.record))
            r = best.record
            print(
                f"  ran {r.label} × {steps} steps: CPU {r.cpu_seconds:.2f} s, wall "
                f"{r.seconds:.2f} s",
                flush=True,
            )
    return out


def rows_for(runs, calibration, clock):
    """Table rows: the estimate under ``calibration`` (``None``: the prior) against ``clock``."""
    pool = local_pool()
    rows = []
    for workload, record in runs:
        if calibration is None:
            estimate = estimate_training(workload, pool)
        else:
            estimate = estimate_training(
                workload,
                pool,
                utilisation=calibration.utilisation,
                step_overhead_s=calibration.step_overhead_s,
            )
        measured = record.measured(clock)
        rows.append(
            {
                "shape": record.label,
                "params": workload.params,
                "tokens": workload.tokens,
                "est_s": estimate.seconds,
                "measured_s": measured,
                "wall_s": record.seconds,
                "error": (estimate.seconds - measured) / measured,
            }
        )
    return rows


def print_rows(title: str, rows) -> None:
    print(f"\n{title}")
    print("| model | params | tokens | estimated s | measured s (CPU) | error | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['shape']} | {r['params']:,} | {r['tokens']:,} | {r['est_s']:.2f} "
            f"| {r['measured_s']:.2f} | {r['error']:+.0%} | {r['wall_s']:.2f} |"
        )


def training_case(quick: bool) -> dict[str, bool]:
    import torch

    # One compute thread: on a shared 2-core machine two threads spin at every barrier while
    # a neighbour holds the other core, and the measured time then measures the neighbour.
    torch.set_num_threads(1)
    pool = local_pool()
    print(
        f"pool: {pool.location}, 1 torch thread, measured fp32 GEMM "
        f"{pool.peak_flops['fp32'] / 1e9:,.1f} GFLOP/s, prior utilisation {pool.utilisation:.0%}"
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    steps = QUICK_STEPS if quick else STEPS
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        history = History(Path(folder) / "history.json")
        seen = run_grid(history, CALIBRATE_ON, steps)
        unseen = run_grid(History(Path(folder) / "held_out.json"), HELD_OUT, steps)
        for clock in ("cpu", "wall"):
            fitted = calibrate(history.records(), pool.name, clock=clock)
            name = "CPU time ÷ threads" if clock == "cpu" else "wall time"
            if clock == "cpu":
                print_rows("Calibration runs, prior estimate", rows_for(seen, None, clock))
            print(
                f"\ncalibrated on {fitted.runs} runs ({name}): utilisation "
                f"{fitted.utilisation:.1%} of peak, {fitted.step_overhead_s * 1000:.1f} ms a step"
            )
            before = rows_for(unseen, None, clock)
            after = rows_for(unseen, fitted, clock)
            if clock == "cpu":
                print_rows("Held-out sizes, before calibration (prior utilisation)", before)
                print_rows("Held-out sizes, after calibration", after)
            worst_before = max(abs(r["error"]) for r in before)
            worst = max(abs(r["error"]) for r in after)
            met = worst <= GOAL
            print(
                f"worst held-out error against {name}: before {worst_before:.0%}, after "
                f"{worst:.0%} (goal ±{GOAL:.0%}): {'MET' if met else 'MISSED'}"
            )
            results[f"training estimate within ±25 % after calibration ({name})"] = met
            if clock == "wall" and FINE_TUNE:
                fine_tune_case(fitted)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return results


def fine_tune_case(calibration) -> None:
    """The training engineer's ``fed_assets.fine_tune`` (causal LM, full and LoRA) against the
    estimate with the plain loop's wall-clock calibration: reported, no goal (its wall time
    on a shared machine measures the neighbours too)."""
    import pyarrow as pa

    from fed_assets.train.fine_tune import fine_tune

    words = [f"w{i}" for i in range(300)]
    rng = __import__("random").Random(0)
    texts = [" ".join(rng.choice(words) for _ in range(120)) for _ in range(400)]
    table = pa.table({"text": texts})
    pool = local_pool()
    print("\nfed_assets.fine_tune (causal LM, L4 d256, 40 steps of 8 × 64 tokens)")
    print("| method | params | trainable | tokens | estimated s | measured s (wall) | error |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for method in ("full", "lora"):
        config = dict(
            n_layer=4,
            n_embd=256,
            n_head=4,
            max_length=SEQ_LEN,
            batch_size=BATCH,
            max_steps=40,
            epochs=100,
            eval_fraction=0.1,
            log_every=1000,
        )
        tuned = fine_tune(table, task="causal_lm", text="text", method=method, config=config)
        done = tuned.training
        workload = Workload(
            params=done["parameters total"],
            tokens=done["steps"] * BATCH * SEQ_LEN,
            method=method,
            trainable=done["parameters trainable"] if method == "lora" else None,
            batch_size=BATCH,
            seq_len=SEQ_LEN,
            n_layer=4,
            d_model=256,
            n_head=4,
            vocab=tuned.model.config.vocab_size,
        )
        estimate = estimate_training(
            workload,
            pool,
            utilisation=calibration.utilisation,
            step_overhead_s=calibration.step_overhead_s,
        )
        error = (estimate.seconds - done["seconds"]) / done["seconds"]
        print(
            f"| {method} | {workload.params:,} | {workload.trained:,} | {workload.tokens:,} "
            f"| {estimate.seconds:.2f} | {done['seconds']:.2f} | {error:+.0%} |"
        )


def query_case() -> bool:
    from fed_assets.catalog import Catalog
    from fed_assets.demo.federated import AML_TRAINING_SET_SQL, CREDIT_FEATURES_SQL
    from fed_assets.demo.generate import DemoPaths, generate
    from fed_assets.demo.silos import embedded_silos
    from fed_assets.placement import choose_engine_region, region_costs
    from resources.compute import ComputeEstate

    estate = ComputeEstate.example()
    with tempfile.TemporaryDirectory() as folder:
        paths = DemoPaths(Path(folder))
        generate(Path(folder))
        catalog = Catalog(embedded_silos(paths), paths.catalog)
        catalog.refresh()
        print(
            "\nFederated query placement (demo silos: EU core banking and compliance, "
            "US payments, UK loans)"
        )
        print(
            "| query | hand-set region | bytes crossing | $ | chosen region | bytes crossing | $ "
            "| measured bytes crossing (hand-set → chosen) |"
        )
        print("|---|---|---:|---:|---|---:|---:|---|")
        better = []
        for name, sql in (
            ("credit_features", CREDIT_FEATURES_SQL),
            ("aml_training_set", AML_TRAINING_SET_SQL),
        ):
            chosen = choose_engine_region(sql, catalog, estate)
            costs = {c.region: c for c in region_costs(sql, catalog, estate)}
            hand = costs["uk"]
            moved = {r: _measured_crossing(sql, catalog, estate, r) for r in ("uk", chosen.region)}
            print(
                f"| {name} | uk | {hand.bytes_crossing:,.0f} | {hand.usd:.6f} | {chosen.region} "
                f"| {chosen.bytes_crossing:,.0f} | {chosen.usd:.6f} "
                f"| {moved['uk']:,} → {moved[chosen.region]:,} |"
            )
            better.append(moved[chosen.region] <= moved["uk"])
        met = any(b for b in better) and all(better)
        print(
            f"chosen region moves no more bytes than the hand-set one, and fewer in at least "
            f"one query: {'MET' if met else 'MISSED'}"
        )
        return met


def _measured_crossing(sql, catalog, estate, region) -> int:
    from fed_assets.query import query

    silos = estate.priced_silos(catalog.silos, region)
    result = query(sql, silos, engine_region=region)
    return sum(n for (_, src, dst), n in result.bytes_by_route.items() if src != dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two token counts per size")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    results = {}
    if not args.skip_training:
        results.update(training_case(args.quick))
    results["chosen engine region moves fewer bytes"] = query_case()
    print(f"\ngoals ({time.perf_counter() - started:.0f} s):")
    for goal, met in results.items():
        print(f"- {goal}: {'met' if met else 'missed'}")


if __name__ == "__main__":
    main()
