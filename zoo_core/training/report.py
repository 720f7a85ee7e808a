"""What a run tells people: each method's figures per seed and over seeds, a plain verdict, `curves.png`.

A learning curve is summarised by the three gains the transfer-learning literature promises (Torrey and
Shavlik, 2009): a higher *start* (validation accuracy after the first epoch), a steeper *slope* (mean gain
per epoch over the first three) and a higher *asymptote* (mean of the last three epochs). The figure that
judges a method is the *test* accuracy of its saved model — the epoch with the best validation loss —
measured once on a split that chose nothing. Over several seeds, each figure is a mean ± standard deviation.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

__all__ = ["curve_gains", "method_summary", "plot_curves", "verdict"]

TEST_FIGURES = ("accuracy", "balanced_accuracy", "macro_f1")


def curve_gains(curve: list[dict[str, float]]) -> dict[str, float]:
    """Start, slope and asymptote of a validation-accuracy curve, and the epoch the saved model comes from."""
    accuracies = [epoch["val_accuracy"] for epoch in curve]
    early = accuracies[: min(3, len(accuracies))]
    losses = [epoch["val_loss"] for epoch in curve]
    return {
        "start": accuracies[0],
        "slope": (early[-1] - early[0]) / (len(early) - 1) if len(early) > 1 else 0.0,
        "asymptote": statistics.fmean(accuracies[-3:]),
        "selected_epoch": curve[losses.index(min(losses))]["epoch"],
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def method_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One method over seeds: its runs as measured, and mean ± std of every figure they share."""
    summary: dict[str, Any] = {"runs": runs}
    for figure in ("start", "slope", "asymptote", "val_accuracy", "seconds"):
        if all(figure in run for run in runs):
            summary[figure] = _spread([run[figure] for run in runs])
    summary["test"] = {figure: _spread([run["test"][figure] for run in runs]) for figure in TEST_FIGURES}
    return summary


def verdict(transfer: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> list[str]:
    """Whether transfer beats each baseline on test accuracy, said plainly either way."""
    ours = transfer["test"]["accuracy"]["mean"]
    lines = []
    for name, baseline in baselines.items():
        gap = (ours - baseline["test"]["accuracy"]["mean"]) * 100
        if gap > 0:
            lines.append(f"transfer beats {name} by {gap:+.1f} points")
        else:
            lines.append(f"transfer does NOT beat {name} ({gap:+.1f} points)")
    return lines


def plot_curves(methods: dict[str, dict[str, Any]], chance: float, path: Path, title: str) -> None:
    """Validation accuracy per epoch for every trained method (mean over seeds, with their range shaded),
    the one-shot baselines as horizontal lines, and chance level; each label carries the test figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    curves_of = {name: [run["curve"] for run in method["runs"] if run.get("curve")] for name, method in methods.items()}
    longest = max((len(curve) for curves in curves_of.values() for curve in curves), default=1)
    for name, method in methods.items():
        test = method["test"]["accuracy"]
        label = f"{name}: test {test['mean']:.1%}" + (f" ± {test['std']:.1%}" if len(method["runs"]) > 1 else "")
        curves = curves_of[name]
        if not curves:
            level = method["val_accuracy"]
            (line,) = axes.plot([1, longest], [level["mean"]] * 2, linestyle="--", label=label)
            axes.axhspan(level["mean"] - level["std"], level["mean"] + level["std"], color=line.get_color(), alpha=0.1)
            continue
        epochs = range(1, max(len(curve) for curve in curves) + 1)
        at = [[curve[e - 1]["val_accuracy"] for curve in curves if len(curve) >= e] for e in epochs]
        (line,) = axes.plot(list(epochs), [statistics.fmean(v) for v in at], marker="o", label=label)
        if len(curves) > 1:
            axes.fill_between(
                list(epochs), [min(v) for v in at], [max(v) for v in at], color=line.get_color(), alpha=0.15
            )
    axes.axhline(chance, color="grey", linestyle=":", label=f"chance ({chance:.0%})")
    axes.set(xlabel="epoch", ylabel="validation accuracy (model selection split)", title=title, ylim=(0, 1))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
