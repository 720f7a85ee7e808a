"""Does one backbone with two heads do as well as two single-task runs, and at what cost?

Two tasks on the same images of digits 5-9 (scikit-learn's digits, 32x32 grey): which digit (5 classes)
and odd or even (2). The backbone is the source model `zoo quickstart` develops (resnet10t trained from
scratch on digits 0-4), developed once. For each seed:

- the joint run: ``finetune_tasks`` with both tasks (one backbone, a head per task, mixed batches);
- two single-task runs of the same budget — same backbone, strategy, epochs, patience, learning rate, batch
  size and seed — each on exactly the splits its task had in the joint run (from its
  ``tasks/<task>/splits.json``, given as --val and --test folders), so both sides are tested on the same
  images.

Prints each task's test accuracy (mean ± std over the seeds) for joint and single, the training steps and
the wall time of the joint run against the two single runs together (training threads: 1, zoo's default).

    python bench/bench_multitask.py [--seeds 3] [--per-class 40] [--strategy finetune] [--epochs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TASKS = ("digit", "parity")


def _spread(values: list[float], percent: bool = True) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    mean = statistics.fmean(values)
    return f"{mean:6.1%} ± {deviation:5.1%}" if percent else f"{mean:6.1f} ± {deviation:5.1f}"


def _task_folders(folders: Any, root: Path, per_class: int) -> dict[str, Path]:
    """digit/ and parity/ image folders holding the same `per_class` images of each digit 5-9."""
    for digit in range(5, 10):
        images = sorted(
            image
            for split in (folders.train, folders.val, folders.test)
            for image in (split / str(digit)).glob("*.png")
        )[:per_class]
        for image in images:
            for task, label in (("digit", str(digit)), ("parity", "odd" if digit % 2 else "even")):
                (root / task / label).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(image, root / task / label / image.name)
    return {task: root / task for task in TASKS}


def _split_folders(run: Path, task: str, root: Path) -> dict[str, Path]:
    """The task's splits in the joint run, as train/val/test image folders for a single-task run."""
    saved = json.loads((run / "tasks" / task / "splits.json").read_text(encoding="utf-8"))
    for split, part in saved.items():
        for item, label in zip(part["items"], part["labels"], strict=True):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item, root / split / label / Path(item).name)
    return {split: root / split for split in saved}


def _steps(metrics: dict[str, Any], batch_size: int, strategy: str) -> int:
    """A single-task run's training steps: epochs run times its batches (a network run skips a last batch of
    one item, which BatchNorm cannot train on)."""
    train = metrics["sizes"]["train"]
    batches = -(-train // batch_size) - (strategy != "features" and train % batch_size == 1)
    return sum(len(run["curve"]) for run in metrics["transfer"]["runs"]) * batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--strategy", choices=("features", "finetune", "full"), default="finetune")
    parser.add_argument("--epochs", type=int, default=15)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder:
        root = Path(folder)
        os.environ["ZOO_HOME"] = str(root / "home")  # the source model's registry entry stays in here
        from zoo_core.training.digits import develop_source, write_digits
        from zoo_core.training.multitask import finetune_tasks
        from zoo_core.training.run import FinetuneOptions, finetune

        started = time.perf_counter()
        folders = write_digits(root / "digits")
        develop_source(folders, root / "source-model", "bench-digits.resnet10t")
        print(f"source model (resnet10t on digits 0-4): {time.perf_counter() - started:.0f} s, once")
        tasks = _task_folders(folders, root / "tasks", arguments.per_class)
        accuracy: dict[str, dict[str, list[float]]] = {"joint": {}, "single": {}}
        cost: dict[str, dict[str, list[float]]] = {"joint": {}, "single": {}}
        for seed in range(arguments.seeds):
            options = FinetuneOptions(
                strategy=arguments.strategy, epochs=arguments.epochs, patience=5, lr=3e-3, batch_size=16, seed=seed
            )
            run = root / f"joint-{seed}"
            started = time.perf_counter()
            joint = finetune_tasks("bench-digits.resnet10t", tasks, run, options)
            cost["joint"].setdefault("seconds", []).append(time.perf_counter() - started)
            cost["joint"].setdefault("steps", []).append(joint["joint"]["runs"][0]["steps"])
            seconds, steps = 0.0, 0
            for task in TASKS:
                accuracy["joint"].setdefault(task, []).append(joint["tasks"][task]["test"]["accuracy"])
                splits = _split_folders(run, task, root / f"single-{seed}-{task}-data")
                alone = FinetuneOptions(**{**options.__dict__, "val": str(splits["val"]), "test": str(splits["test"])})
                started = time.perf_counter()
                single = finetune("bench-digits.resnet10t", splits["train"], root / f"single-{seed}-{task}", alone)
                seconds += time.perf_counter() - started
                steps += _steps(single, options.batch_size, options.strategy)
                accuracy["single"].setdefault(task, []).append(single["test"]["accuracy"])
                assert single["sizes"] == joint["tasks"][task]["sizes"]  # the same images on both sides
            cost["single"].setdefault("seconds", []).append(seconds)
            cost["single"].setdefault("steps", []).append(steps)
            print(
                f"seed {seed}: "
                + ", ".join(
                    f"{task} joint {accuracy['joint'][task][-1]:.1%} single {accuracy['single'][task][-1]:.1%}"
                    for task in TASKS
                )
            )
    sizes = joint["tasks"]["digit"]["sizes"]
    print(
        f"\ndigits 5-9, {arguments.per_class} images per digit, both tasks on the same images "
        f"({sizes['train']} train, {sizes['val']} validation, {sizes['test']} test); strategy {arguments.strategy}, "
        f"{arguments.epochs} epochs (patience 5), batch 16, {arguments.seeds} seeds"
    )
    print(f"{'':8} {'digit test acc.':>16} {'parity test acc.':>17} {'steps / seed':>14} {'s / seed':>14}")
    for side in ("joint", "single"):
        label = "joint" if side == "joint" else "2 single"
        figures = [_spread(accuracy[side][task]) for task in TASKS]
        print(
            f"{label:8} {figures[0]:>16} {figures[1]:>17} {_spread(cost[side]['steps'], False):>14} "
            f"{_spread(cost[side]['seconds'], False):>14}"
        )
    for task in TASKS:
        gaps = [
            joint_ - single_ for joint_, single_ in zip(accuracy["joint"][task], accuracy["single"][task], strict=True)
        ]
        mean, deviation = statistics.fmean(gaps), statistics.stdev(gaps) if len(gaps) > 1 else 0.0
        verdict = "within noise" if abs(mean) <= deviation else "joint better" if mean > 0 else "joint WORSE"
        print(f"{task}: joint - single {mean * 100:+.1f} ± {deviation * 100:.1f} points ({verdict})")


if __name__ == "__main__":
    main()
