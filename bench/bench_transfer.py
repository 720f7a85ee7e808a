"""Does transfer pay on digits 5-9 with 10 labels per class? Every method on the same splits, over seeds.

For each seed, scikit-learn's digits are drawn again (zoo_core.training.digits: 10 training and 10 validation
images per class of 5-9, every other 5-9 image for the test) and the runs of `zoo quickstart` are made on them:
EfficientNet-Lite0 with real ImageNet weights (frozen features under a logistic-regression head, and
fine-tuned), a source model developed once on digits 0-4, and the baselines beside them — scratch (the
source model's architecture from random weights, same budget), pixels (logistic regression on raw
pixels) and knn (on EfficientNet's features). Prints the test accuracy of each method as mean ± std over
the seeds, its balanced accuracy, and its wall time per seed (training threads: 1, zoo's default).

    python bench/bench_transfer.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _spread(values: list[float]) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):6.1%} ± {deviation:5.1%}"


def best_transfer(order: list[str]) -> str:
    """The best-ranked method that is not a baseline."""
    from zoo_core.training.run import BASELINES

    return next(method for method in order if method not in BASELINES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    seeds = range(parser.parse_args().seeds)
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder:
        root = Path(folder)
        os.environ["ZOO_HOME"] = str(root / "home")  # the source model's registry entry stays in here
        from zoo_core.training.digits import comparison, develop_source, ranking, write_digits
        from zoo_core.training.run import finetune

        started = time.perf_counter()
        develop_source(write_digits(root / "seed0"), root / "source-model", "bench-digits.resnet10t")
        print(f"source model (resnet10t on digits 0-4): {time.perf_counter() - started:.0f} s, once")
        measured: dict[str, list[dict[str, Any]]] = {}
        test_sizes = set()
        for seed in seeds:
            folders = write_digits(root / f"seed{seed}", seed=seed)
            results = {
                label: finetune(name, folders.train, root / f"run-{seed}-{index}", options)
                for index, (label, (name, options)) in enumerate(comparison(folders, "bench-digits.resnet10t").items())
            }
            test_sizes |= {metrics["sizes"]["test"] for metrics in results.values()}
            for method, summary in ranking(results):
                measured.setdefault(method, []).append(summary["runs"][0])
            print(f"seed {seed}: " + ", ".join(f"{m} {s['test']['accuracy']['mean']:.1%}" for m, s in ranking(results)))
    print(f"\ndigits 5-9, 10 labels per class, {len(seeds)} seeds; test: {sorted(test_sizes)} images per seed")
    print(f"{'method':34} {'test accuracy':>16} {'balanced':>16} {'s / seed':>9}")
    order = sorted(measured, key=lambda m: -statistics.fmean(r["test"]["accuracy"] for r in measured[m]))
    for method in order:
        runs = measured[method]
        accuracy = _spread([run["test"]["accuracy"] for run in runs])
        balanced = _spread([run["test"]["balanced_accuracy"] for run in runs])
        print(f"{method:34} {accuracy:>16} {balanced:>16} {statistics.fmean(run['seconds'] for run in runs):9.1f}")
    beaten = order[: order.index(best_transfer(order))]
    if beaten:
        print(f"\ntransfer does not pay here: {', '.join(beaten)} beat(s) every transfer method on test accuracy")
    else:
        print(f"\ntransfer pays: {order[0]} beats every baseline on test accuracy")


if __name__ == "__main__":
    main()
