"""ServerApp: FedAvg over the sites' trainable weights; writes the result for the caller."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fed_assets.train.site import FederationSpec, starting_model

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    spec = FederationSpec.from_json(Path(str(context.run_config["spec"])).read_text())
    sites = int(context.run_config["sites"])
    arrays = starting_model(spec).trainable_arrays()
    names = sorted(arrays)
    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=sites,
        min_evaluate_nodes=sites,
        min_available_nodes=sites,
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord([arrays[n] for n in names]),
        num_rounds=int(context.run_config["rounds"]),
    )
    out = Path(str(context.run_config["out"]))
    final = dict(zip(names, result.arrays.to_numpy_ndarrays(), strict=True))
    np.savez(out / "weights.npz", **final)
    evaluated = {str(r): dict(m) for r, m in result.evaluate_metrics_clientapp.items()}
    (out / "metrics.json").write_text(json.dumps(evaluated))
