"""Can a network trained from scratch on 10 images per class be evaluated fairly? Three BatchNorm handlings.

The scratch baseline of `zoo quickstart`, measured three ways on the same splits, seeds and initial weights:

- ``re-estimated``: zoo's `network_run` as it is — BatchNorm running statistics re-estimated on the training
  set before each evaluation (zoo_core.training.baselines.recompute_batchnorm);
- ``groupnorm``: every BatchNorm2d replaced by GroupNorm (gcd(32, channels) groups) before training, so there
  are no running statistics to re-estimate;
- ``unchanged``: the same run with the re-estimation switched off: running statistics move only by
  BatchNorm's momentum, 10% a training step.

The network is resnet10t from random weights on 32x32 grey input (mean/std 0.5, as `zoo pretrain` builds the
digits source model), under a linear head, with the quickstart's budget (`--strategy full`, AdamW lr 3e-3,
batch 16, 15 epochs, patience 5, one training thread). Tasks: digits 5-9 as `write_digits` draws them
(10 training and 10 validation images per class, every other image for the test) and, with ``--digits-0-3``,
digits 0-3 drawn the same way from its source folder. The figure is the test accuracy of the saved model
(the epoch with the best validation loss), as mean ± standard deviation over the seeds; each seed's value
and the seconds per run (training and scoring) are printed beside it, and the wall and CPU time of each
task (3 seeds: about a minute of CPU each; more wall time on a busy machine).

    python bench/bench_batchnorm.py [--seeds 3] [--digits-0-3]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo_core.catalogue_sources import default_catalogue
from zoo_core.loading import load
from zoo_core.specs import ImageInput, ModelSpec, Output
from zoo_core.training import baselines
from zoo_core.training.data import Dataset, load_dataset
from zoo_core.training.digits import write_digits
from zoo_core.training.evaluate import predict_scores
from zoo_core.training.model import TransferModel, make_head
from zoo_core.training.run import FinetuneOptions, pinned_threads, run_splits, seed_everything, usable_transform
from zoo_core.training.splits import Splits
from zoo_core.training.strategies import Job, network_run

ARCH = "resnet10t.c3_in1k"  # its architecture only: the weights are random
GREY_32 = ImageInput(channels=1, height=32, width=32, mean=(0.5,), std=(0.5,), crop_pct=1.0)
SHOTS = 10  # training images per class, and as many again for validation
FIRST_DIGITS = ("0", "1", "2", "3")


def scratch_spec() -> ModelSpec:
    """resnet10t with the digits source model's input and its five-class classifier: the architecture the
    quickstart's scratch baseline builds (the classifier is built, unused: the linear head replaces it)."""
    return dataclasses.replace(default_catalogue().get(ARCH), input=GREY_32, output=Output(num_classes=5))


def first_digits_splits(source: Path, seed: int) -> Splits:
    """Digits 0-3 from `write_digits`'s source folder, split per class as it splits digits 5-9: `SHOTS`
    training images, `SHOTS` validation images, the rest for the test, drawn with `seed`."""
    every = load_dataset(source, "image")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for label, name in enumerate(every.classes):
        if name in FIRST_DIGITS:
            members = rng.permutation([i for i, known in enumerate(every.labels) if known == label]).tolist()
            train, val, test = train + members[:SHOTS], val + members[SHOTS : 2 * SHOTS], test + members[2 * SHOTS :]
    index = {name: position for position, name in enumerate(FIRST_DIGITS)}

    def dataset(chosen: list[int]) -> Dataset:
        rows = sorted(chosen)
        labels = [index[every.classes[every.labels[i]]] for i in rows]
        return Dataset("image", [every.items[i] for i in rows], labels, list(FIRST_DIGITS))

    return Splits(dataset(train), dataset(val), dataset(test))


def to_groupnorm(module: nn.Module) -> None:
    """Replace every BatchNorm2d under `module` by a GroupNorm over the same channels, with its affine init."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            norm = nn.GroupNorm(math.gcd(32, child.num_features), child.num_features, eps=child.eps)
            with torch.no_grad():
                norm.weight.copy_(child.weight)
                norm.bias.copy_(child.bias)
            setattr(module, name, norm)
        else:
            to_groupnorm(child)


@contextmanager
def momentum_only() -> Iterator[None]:
    """`network_run` without its re-estimation, for the block: the function it calls does nothing, so the
    run is otherwise the very same code."""
    kept = baselines.recompute_batchnorm

    def unchanged(module: nn.Module, batches: Any) -> None:
        """BatchNorm's running statistics left as the training steps moved them."""

    baselines.recompute_batchnorm = unchanged
    try:
        yield
    finally:
        baselines.recompute_batchnorm = kept


def scratch_accuracy(spec: ModelSpec, splits: Splits, transform: Any, seed: int, method: str) -> tuple[float, float]:
    """(test accuracy of the saved model, seconds) of one scratch run by `method`."""
    options = FinetuneOptions(strategy="full", lr=3e-3, batch_size=16, epochs=15, patience=5, seed=seed)
    job = Job(splits, transform, options, seed, checkpoint=None, resume=False, identity={})
    started = time.perf_counter()
    seed_everything(seed)  # the same initial weights for every method
    backbone = load(spec, pretrained=False)
    model = TransferModel(backbone, make_head("linear", backbone.feature_dim, len(splits.train.classes)))
    if method == "groupnorm":
        to_groupnorm(model)
    with momentum_only() if method == "unchanged" else nullcontext():
        network_run(model, job, "full", pretrained=False)  # leaves the best validation-loss epoch in `model`
    scores = predict_scores(model, splits.test, transform, options.batch_size)
    accuracy = float(np.mean(scores.argmax(axis=1) == np.asarray(splits.test.labels)))
    return accuracy, time.perf_counter() - started


METHODS = ("re-estimated", "groupnorm", "unchanged")


def measure_task(title: str, spec: ModelSpec, draw: Callable[[int], tuple[Splits, Path]], seeds: range) -> None:
    """Every method on every seed's splits of one task; prints one row a method."""
    started, cpu = time.perf_counter(), time.process_time()
    accuracies: dict[str, list[float]] = {method: [] for method in METHODS}
    seconds: dict[str, list[float]] = {method: [] for method in METHODS}
    for seed in seeds:
        splits, folder = draw(seed)
        transform = usable_transform(spec, folder)
        for method in METHODS:
            accuracy, spent = scratch_accuracy(spec, splits, transform, seed, method)
            accuracies[method].append(accuracy)
            seconds[method].append(spent)
    sizes = "/".join(str(len(part.items)) for part in splits)
    print(f"\n{title}, train/val/test {sizes} images, {len(seeds)} seeds, chance {1 / len(splits.train.classes):.0%}")
    print(f"{'method':13} {'test accuracy':>15}  {'per seed':24} {'s / run':>7}")
    for method in METHODS:
        values = accuracies[method]
        deviation = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
        spread = f"{statistics.fmean(values):.1%} ± {deviation:.1f}"
        each = ", ".join(f"{value:.1%}" for value in values)
        print(f"{method:13} {spread:>15}  {each:24} {statistics.fmean(seconds[method]):7.1f}")
    print(f"wall time: {time.perf_counter() - started:.0f} s (CPU {time.process_time() - cpu:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1, each its own splits (default 3)")
    parser.add_argument("--digits-0-3", action="store_true", help="also the 4-class task (about as long again)")
    arguments = parser.parse_args()
    if arguments.seeds < 1:
        parser.error(f"--seeds {arguments.seeds}: must be at least 1")
    seeds = range(arguments.seeds)
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder:
        root = Path(folder)
        os.environ["ZOO_HOME"] = str(root / "home")  # the built-in catalogue only; nothing written elsewhere
        spec = scratch_spec()

        def last_digits(seed: int) -> tuple[Splits, Path]:
            folders = write_digits(root / f"seed{seed}", seed=seed)
            options = FinetuneOptions(val=str(folders.val), test=str(folders.test))
            return run_splits(folders.train, "image", options, seed), folders.train

        def first_digits(seed: int) -> tuple[Splits, Path]:
            source = write_digits(root / f"seed{seed}", seed=seed).source
            return first_digits_splits(source, seed), source

        with pinned_threads(1):
            measure_task("digits 5-9", spec, last_digits, seeds)
            if arguments.digits_0_3:
                measure_task("digits 0-3", spec, first_digits, seeds)


if __name__ == "__main__":
    main()
