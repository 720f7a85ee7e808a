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


def verdict(transfer: dict[str, Any], baselines: dict[str, dict[str, Any]], test_size: int) -> list[str]:
    """Whether transfer beats each baseline on test accuracy, said plainly either way, with the noise: over
    several seeds the mean ± std of the paired per-seed gaps ("within noise" when the spread covers zero);
    on one seed, what one test item is worth."""
    item = 100 / test_size
    lines = []
    for name, baseline in baselines.items():
        gaps = [
            (ours["test"]["accuracy"] - theirs["test"]["accuracy"]) * 100
            for ours, theirs in zip(transfer["runs"], baseline["runs"], strict=True)
        ]
        spread = _spread(gaps)
        if len(gaps) > 1:
            noise = f"{spread['mean']:+.1f} ± {spread['std']:.1f} points over {len(gaps)} seeds"
            if abs(spread["mean"]) <= spread["std"]:
                lines.append(f"transfer and {name} are within noise of each other ({noise})")
                continue
        else:
            noise = f"{spread['mean']:+.1f} points; one test item is {item:.1f}"
        beats = spread["mean"] > 0
        lines.append(f"transfer beats {name} ({noise})" if beats else f"transfer does NOT beat {name} ({noise})")
    return lines


def plot_curves(methods: dict[str, dict[str, Any]], chance: float, path: Path, title: str) -> None:
    """Validation accuracy per epoch for every trained method (mean over seeds, ± std shaded), the one-shot
    baselines as dashed lines at their validation accuracy, and chance level; each label gives the method's
    validation and test accuracy, so no line is read as the other split's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    curves_of = {name: [run["curve"] for run in method["runs"] if run.get("curve")] for name, method in methods.items()}
    longest = max((len(curve) for curves in curves_of.values() for curve in curves), default=1)
    for name, method in methods.items():
        several = len(method["runs"]) > 1
        test, val = method["test"]["accuracy"], method["val_accuracy"]
        label = f"{name}: val {val['mean']:.1%}, test {test['mean']:.1%}" + (f" ± {test['std']:.1%}" if several else "")
        curves = curves_of[name]
        if not curves:
            (line,) = axes.plot([1, longest], [val["mean"]] * 2, linestyle="--", label=label)
            axes.axhspan(val["mean"] - val["std"], val["mean"] + val["std"], color=line.get_color(), alpha=0.1)
            continue
        epochs = list(range(1, max(len(curve) for curve in curves) + 1))
        at = [[curve[e - 1]["val_accuracy"] for curve in curves if len(curve) >= e] for e in epochs]
        means = [statistics.fmean(values) for values in at]
        (line,) = axes.plot(epochs, means, marker="o", label=label)
        if several:  # ± std over the seeds still training at that epoch, as for the baselines' bands
            deviations = [statistics.stdev(values) if len(values) > 1 else 0.0 for values in at]
            lower = [mean - deviation for mean, deviation in zip(means, deviations, strict=True)]
            upper = [mean + deviation for mean, deviation in zip(means, deviations, strict=True)]
            axes.fill_between(epochs, lower, upper, color=line.get_color(), alpha=0.15)
    axes.axhline(chance, color="grey", linestyle=":", label=f"chance ({chance:.0%})")
    axes.set(xlabel="epoch", ylabel="validation accuracy (model selection split)", title=title, ylim=(0, 1))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
