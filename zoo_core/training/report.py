"""What a run leaves behind for people: learning-curve summaries and `curves.png`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_curves", "summarise"]


def summarise(curve: list[dict[str, float]]) -> dict[str, Any]:
    """Start, slope (mean gain per epoch over the first three) and final validation accuracy, as the
    transfer-learning literature compares them, with the whole curve."""
    accuracies = [epoch["val_accuracy"] for epoch in curve]
    early = accuracies[: min(3, len(accuracies))]
    slope = (early[-1] - early[0]) / (len(early) - 1) if len(early) > 1 else 0.0
    return {"start": accuracies[0], "slope": slope, "final": accuracies[-1], "best": max(accuracies), "curve": curve}


def plot_curves(curves: dict[str, list[dict[str, float]]], path: Path, title: str) -> None:
    """Validation accuracy per epoch, one line per run, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for label, curve in curves.items():
        axes.plot([e["epoch"] for e in curve], [e["val_accuracy"] for e in curve], marker="o", label=label)
    axes.set(xlabel="epoch", ylabel="validation accuracy", title=title, ylim=(0, 1))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
