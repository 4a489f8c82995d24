"""A model asset as the training engineer wires it: chosen pool's tags on the run, measured
actuals beside the estimate in the materialisation's metadata, history across runs."""

from __future__ import annotations

import dagster as dg
import numpy as np

from fed_assets.placement import History, measure, placement_for_training, placement_metadata
from resources.compute import ComputeEstate


def test_a_placed_asset_carries_its_tags_and_shows_estimate_against_actual(tmp_path):
    estate = ComputeEstate(history_path=str(tmp_path / "history.json"))
    placement = placement_for_training(estate, 100_000, 10_000, batch_size=4, seq_len=25)

    @dg.asset(op_tags=placement.tags, required_resource_keys={"compute"})
    def tiny_model(context):  # no annotation: postponed ones are strings Dagster refuses
        compute = context.resources.compute
        chosen = placement_for_training(compute, 100_000, 10_000, batch_size=4, seq_len=25)
        with measure(chosen.pool, chosen.estimate, history=compute.history_path) as run:
            a = np.ones((256, 256), dtype=np.float32)
            for _ in range(20):
                a @ a  # stands in for the training loop
            run.tokens = 10_000
        records = History(compute.history_path).records()
        context.add_output_metadata(placement_metadata(chosen, run.actual, history=records))
        return 1

    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):  # a second run reads the first one's history
        result = dg.materialize(
            [tiny_model], resources={"compute": estate}, instance=instance, tags=placement.tags
        )
        assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.tags["fed_assets/pool"] == "local"
    (materialization,) = result.asset_materializations_for_node("tiny_model")
    metadata = materialization.metadata
    assert metadata["placement/pool"].value == "local"
    table = metadata["placement/estimate vs actual"].value
    seconds = next(r for r in table.records if r.data["quantity"] == "seconds")
    assert seconds.data["measured"] > 0
    assert metadata["placement/energy method"].value in ("rapl", "codecarbon", "nvml")
    assert "base64," in metadata["placement/estimate error over runs"].value
    assert len(History(tmp_path / "history.json").records()) == 2
    assert tiny_model.op.tags["fed_assets/pool"] == "local"
