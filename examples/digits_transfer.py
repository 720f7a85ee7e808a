"""Does transfer pay on 10 labelled images per class? scikit-learn's digits, offline, every method measured.

Source task: digits 0-4, all their images. Target task: digits 5-9 with 10 training and 10 validation images
per class; every other target image is the test set. Three runs on the same splits, with the baselines beside
them: EfficientNet-Lite0's real ImageNet features (logistic regression; baselines pixels and knn), the same
network fine-tuned, and a source model zoo develops on digits 0-4 (features; baseline scratch). Each run
prints its test figures and whether transfer beats its baselines. `bench/bench_transfer.py` repeats this
over fresh draws of the labelled images.

    python examples/digits_transfer.py [--out runs/digits] [--repeats 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def run(out: Path, repeats: int = 1) -> dict[str, dict[str, Any]]:
    """Every run's metrics, by label."""
    from zoo_core.training.digits import comparison, develop_source, run_folder, write_digits
    from zoo_core.training.run import finetune

    folders = write_digits(out / "data")
    develop_source(folders, out / "source-model", "digits-0-4.resnet10t")
    return {
        label: finetune(name, folders.train, run_folder(out, label), options)
        for label, (name, options) in comparison(folders, "digits-0-4.resnet10t", repeats).items()
    }


def main() -> None:
    from zoo_core.cli.train import report_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/digits"))
    parser.add_argument("--repeats", type=int, default=1, help="seeds per run: figures become mean ± std")
    arguments = parser.parse_args()
    for label, metrics in run(arguments.out, arguments.repeats).items():
        print(f"\n== {label}")
        report_run(metrics)


if __name__ == "__main__":
    main()
