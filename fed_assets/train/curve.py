"""The training curve as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence

# Steps in the moving average drawn over the raw per-step loss.
SMOOTHING = 10


def curve_png(history: Sequence[tuple[int, float]], *, title: str = "training loss") -> bytes:
    """A PNG of loss per step (raw and moving average)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    steps = np.array([s for s, _ in history], dtype=float)
    losses = np.array([v for _, v in history], dtype=float)
    figure, axes = plt.subplots(figsize=(6, 3.2), dpi=90)
    axes.plot(steps, losses, color="#9ab", linewidth=0.8, label="loss per step")
    if len(losses) >= SMOOTHING:
        kernel = np.ones(SMOOTHING) / SMOOTHING
        axes.plot(
            steps[SMOOTHING - 1 :],
            np.convolve(losses, kernel, "valid"),
            color="#135",
            label=f"mean of {SMOOTHING}",
        )
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.legend(loc="upper right")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    plt.close(figure)
    return out.getvalue()
