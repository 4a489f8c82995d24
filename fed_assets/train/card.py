"""The model card: what the model is, how well it does beside its baselines, and its data lineage."""

from __future__ import annotations

import json
from typing import Any


def model_card(model: Any) -> str:
    """Markdown for a ``FineTunedModel`` (its ``lineage`` as filled in by the model IO manager)."""
    base = model.base.name or "offline GPT-2 built from the config, tokenizer trained on the data"
    lines = [
        f"# {model.lineage.get('asset', 'Fine-tuned model')}",
        "",
        f"- task: `{model.task}`; method: `{model.method}`; base: {base}",
    ]
    if model.label:
        lines.append(f"- label: `{model.label}`; classes: {', '.join(map(str, model.classes))}")
    if model.renderer is not None:
        lines.append(
            f"- features: {', '.join(f'`{c}`' for c in model.renderer.columns)}; "
            f"numbers as {model.renderer.numbers}"
        )
    if model.text:
        lines.append(f"- text column: `{model.text}`")
    lines += ["", "## Held-out metrics", "", metrics_table(model.metrics), "", "## Training", ""]
    lines += [f"- {k}: {v}" for k, v in model.training.items()]
    lineage = model.lineage or {}
    lines += ["", "## Data lineage", ""]
    if not lineage:
        lines.append("Trained from data passed in directly (no silo lineage recorded).")
    for source in lineage.get("sources", []):
        lines.append(
            f"- `{source['silo']}.{source['table']}` at version `{source.get('version', '?')}`"
            + (f", columns {', '.join(source['columns'])}" if source.get("columns") else "")
        )
    for key in ("rows", "columns", "run_id", "federation"):
        if key in lineage:
            value = lineage[key]
            lines.append(
                f"- {key}: {json.dumps(value) if isinstance(value, dict | list) else value}"
            )
    if lineage.get("sql"):
        lines += [
            "",
            "Federated query the training set came from:",
            "",
            "```sql",
            lineage["sql"].strip(),
            "```",
        ]
    return "\n".join(lines) + "\n"


def metrics_table(metrics: dict[str, Any]) -> str:
    """The model beside its baselines, one row each (Markdown)."""
    rows = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    if not rows:
        return "(none)"
    names = sorted({m for v in rows.values() for m in v})
    out = ["| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for who, values in rows.items():
        cells = [
            f"{values[n]:.4f}" if isinstance(values.get(n), float) else str(values.get(n, ""))
            for n in names
        ]
        out.append(f"| {who} | " + " | ".join(cells) + " |")
    return "\n".join(out)
