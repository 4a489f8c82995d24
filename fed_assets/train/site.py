"""One site of a federated fine-tune: reads its own silo table in place and trains locally.

Everything a site and the aggregator agree on travels in a ``FederationSpec``, which holds no
row of data: the task, the columns, the label's classes and the config. Numbers are written as
digits and the tokenizer is trained on text made from the spec alone (column names, digits),
since quantile bins or a vocabulary learnt from the rows would carry data out of the silo.
Only weights leave a site (and its held-out metrics, which are aggregates).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fed_assets.residency import check_movement
from fed_assets.train.config import TrainingConfig


@dataclass(frozen=True)
class FederationSpec:
    """What every site builds the same starting model from (no data in it)."""

    features: tuple[str, ...]
    label: str
    classes: tuple[Any, ...]
    config: TrainingConfig
    method: str = "lora"
    template: str | None = None
    local_epochs: float = 1.0
    task: str = "sequence_classification"

    def to_json(self) -> str:
        values = asdict(self)
        values["config"] = json.loads(self.config.to_json())
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str) -> FederationSpec:
        values = json.loads(text)
        values["config"] = TrainingConfig.from_dict(values["config"])
        values["features"] = tuple(values["features"])
        values["classes"] = tuple(values["classes"])
        return cls(**values)

    @property
    def columns(self) -> list[str]:
        return [self.label, *self.features]


def starting_model(spec: FederationSpec):
    """The shared starting ``FineTunedModel`` (same spec → same weights at every site)."""
    from fed_assets.train.base import BaseSpec, with_method
    from fed_assets.train.fine_tune import start_model
    from fed_assets.train.model import FineTunedModel
    from fed_assets.train.render import Renderer
    from fed_assets.train.tokenizer import train_tokenizer

    renderer = Renderer(columns=spec.features, template=spec.template, numbers="digits")
    tokenizer = train_tokenizer(renderer.vocabulary_text(), vocab_size=spec.config.vocab_size)
    base = BaseSpec("offline")
    started = start_model(spec.task, tokenizer, spec.config, base, len(spec.classes))
    model = with_method(started["model"], spec.task, spec.method, spec.config, base=base)
    return FineTunedModel(
        task=spec.task,
        method=spec.method,
        base=base,
        model=model,
        tokenizer=tokenizer,
        config=spec.config,
        renderer=renderer,
        label=spec.label,
        classes=spec.classes,
        base_state=started["base_state"],
    )


def read_site_table(silo, table: str, columns: list[str]):
    """The site's training rows, read in place; they stay in the silo's region (checked)."""
    route = check_movement(silo, table, columns, kind="rows", destination_region=silo.region)
    rows = silo.scan(silo.read_sql(table, columns=columns)).read_all()
    return rows, route.moved(0, 0, via="read at the site; no row leaves")


class Site:
    """A site's local state: its split, encoded once, and a model to train each round."""

    def __init__(self, spec: FederationSpec, rows):
        from fed_assets.train.data import prepare

        self.spec = spec
        self.model = starting_model(spec)
        self.prepared = prepare(
            rows,
            task=spec.task,
            label=spec.label,
            text=None,
            template=spec.template,
            features=None if spec.template else list(spec.features),
            eval_fraction=spec.config.eval_fraction,
            seed=spec.config.seed,
        )
        index = {c: i for i, c in enumerate(spec.classes)}
        labels = rows.column(spec.label).to_pylist()
        self.y = np.array([index[v] for v in labels], dtype=np.int64)
        self.texts = self.model.renderer.render(self.prepared.table)
        self.encoded = self.model.encode(self.texts)

    @property
    def examples(self) -> int:
        return len(self.prepared.train)

    def train_round(
        self, arrays: dict[str, np.ndarray], round_number: int
    ) -> dict[str, np.ndarray]:
        """Start from the global ``arrays``, train ``local_epochs`` on the local split."""
        from fed_assets.train.fine_tune import subset
        from fed_assets.train.loop import train

        self.model.set_trainable_arrays(arrays)
        config = self.spec.config.replace(
            epochs=self.spec.local_epochs, seed=self.spec.config.seed + round_number
        )
        train(
            self.model.model,
            subset(self.encoded, self.prepared.train, self.y),
            config,
            causal=False,
        )
        return self.model.trainable_arrays()

    def evaluate(self, arrays: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        """The global model and the local baselines on this site's held-out rows."""
        from fed_assets.train import baselines

        self.model.set_trainable_arrays(arrays)
        held, train_rows, k = self.prepared.held_out, self.prepared.train, len(self.spec.classes)
        y = self.y
        proba = self.model.predict_proba([self.texts[i] for i in held])
        return {
            "model": baselines.classification_metrics(proba, y[held]),
            "trivial": baselines.classification_metrics(
                baselines.trivial_proba(y[train_rows], k, len(held)), y[held]
            ),
            "logistic_regression": baselines.classification_metrics(
                baselines.logistic_regression_proba(
                    self.prepared.table,
                    self.prepared.features,
                    y,
                    train_rows,
                    held,
                    seed=self.spec.config.seed,
                ),
                y[held],
            ),
        }


def weighted_metrics(
    per_site: dict[str, tuple[dict[str, dict[str, float]], int]],
) -> dict[str, dict[str, float]]:
    """Example-weighted means of the sites' held-out metrics (aggregates only cross sites)."""
    total = sum(n for _, n in per_site.values())
    out: dict[str, dict[str, float]] = {}
    for metrics, n in per_site.values():
        for who, values in metrics.items():
            for name, value in values.items():
                out.setdefault(who, {}).setdefault(name, 0.0)
                out[who][name] += value * n / total
    return out
