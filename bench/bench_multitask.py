"""Does one backbone with two heads do as well as two single-task runs, and at what cost?

Two tasks on the same images of digits 5-9 (scikit-learn's digits, 32x32 grey, all ~180 of each digit):
which digit (5 classes) and odd or even (2). The backbone is the source model `zoo quickstart` develops
(resnet10t trained from scratch on digits 0-4), developed once. Each task is split as runs split
(``--val-split``/``--test-split`` defaults; both tasks label the same images, so they share the splits).
For each seed:

- the joint run: ``finetune_tasks`` with both tasks (one backbone, a head per task, mixed batches);
- two single-task runs of the same options — same backbone, strategy, epoch cap, patience, learning rate,
  batch size and seed — each on exactly the splits its task had in the joint run (from its
  ``tasks/<task>/splits.json``, given as --val and --test folders), so both sides are tested on the same
  images. Together they take about twice the joint run's steps: BY CONSTRUCTION, since every joint step
  serves both tasks' labels of the same images;
- with ``--equal-compute``, two single-task runs more, each capped at half the epochs, so the two together
  take the joint run's steps.

Prints each task's test accuracy (mean ± std over the seeds) for each side, the training steps and wall
time per seed (training threads: 1, zoo's default), and how many runs early stopping ended before the cap.

    python bench/bench_multitask.py [--equal-compute] [--seeds 3] [--per-class 0 (all)] [--strategy full]
        [--epochs 10] [--patience 2]
"""

from __future__ import annotations

import argparse
import dataclasses
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


def _single(
    finetune: Any, options: Any, run: Path, root: Path, epochs: int
) -> tuple[dict[str, float], float, int, int]:
    """Each task alone on its joint-run splits, capped at `epochs`: accuracies, seconds, steps, epochs run."""
    accuracy, seconds, steps, ran = {}, 0.0, 0, 0
    for task in TASKS:
        splits = _split_folders(run, task, root / f"{task}-data")
        alone = dataclasses.replace(options, epochs=epochs, val=str(splits["val"]), test=str(splits["test"]))
        started = time.perf_counter()
        single = finetune("bench-digits.resnet10t", splits["train"], root / task, alone)
        seconds += time.perf_counter() - started
        steps += _steps(single, options.batch_size, options.strategy)
        ran += sum(len(run_["curve"]) for run_ in single["transfer"]["runs"])
        accuracy[task] = single["test"]["accuracy"]
    return accuracy, seconds, steps, ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=0, help="images of each digit; 0: all (~180)")
    parser.add_argument("--strategy", choices=("features", "finetune", "full"), default="full")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--equal-compute", action="store_true", help="also single runs at half the epochs")
    arguments = parser.parse_args()
    sides = ("joint", "single") + (("half",) if arguments.equal_compute else ())
    titles = {"joint": "joint", "single": "2 single", "half": "2 single, half epochs each"}
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
        tasks = _task_folders(folders, root / "tasks", arguments.per_class or 10**6)
        accuracy: dict[str, dict[str, list[float]]] = {side: {task: [] for task in TASKS} for side in sides}
        cost: dict[str, dict[str, list[float]]] = {side: {"seconds": [], "steps": []} for side in sides}
        epochs_run: dict[str, list[int]] = {side: [] for side in sides}
        for seed in range(arguments.seeds):
            options = FinetuneOptions(
                strategy=arguments.strategy,
                epochs=arguments.epochs,
                patience=arguments.patience,
                lr=3e-3,
                batch_size=32,
                seed=seed,
            )
            run = root / f"joint-{seed}"
            started = time.perf_counter()
            joint = finetune_tasks("bench-digits.resnet10t", tasks, run, options)
            cost["joint"]["seconds"].append(time.perf_counter() - started)
            cost["joint"]["steps"].append(joint["joint"]["runs"][0]["steps"])
            epochs_run["joint"].append(len(joint["joint"]["runs"][0]["curve"]))
            for task in TASKS:
                accuracy["joint"][task].append(joint["tasks"][task]["test"]["accuracy"])
            print(f"seed {seed}: joint run {cost['joint']['seconds'][-1]:.0f} s", flush=True)
            for side in sides[1:]:
                cap = arguments.epochs if side == "single" else max(1, arguments.epochs // 2)
                found, seconds, steps, ran = _single(finetune, options, run, root / f"{side}-{seed}", cap)
                for task in TASKS:
                    accuracy[side][task].append(found[task])
                cost[side]["seconds"].append(seconds)
                cost[side]["steps"].append(steps)
                epochs_run[side].append(ran)
            print(
                f"seed {seed}: "
                + "; ".join(
                    f"{side} " + ", ".join(f"{task} {accuracy[side][task][-1]:.1%}" for task in TASKS) for side in sides
                ),
                flush=True,
            )
    sizes = joint["tasks"]["digit"]["sizes"]
    print(
        f"\ndigits 5-9, {arguments.per_class or 'all'} images per digit, both tasks on the same images "
        f"({sizes['train']} train, {sizes['val']} validation, {sizes['test']} test); strategy {arguments.strategy}, "
        f"up to {arguments.epochs} epochs (patience {arguments.patience}), lr 3e-3 (backbone 3e-4), batch 32, "
        f"{arguments.seeds} seeds"
    )
    print(f"{'':28} {'digit test acc.':>16} {'parity test acc.':>17} {'steps / seed':>14} {'s / seed':>14}")
    for side in sides:
        figures = [_spread(accuracy[side][task]) for task in TASKS]
        print(
            f"{titles[side]:28} {figures[0]:>16} {figures[1]:>17} {_spread(cost[side]['steps'], False):>14} "
            f"{_spread(cost[side]['seconds'], False):>14}"
        )
    runs_per_seed = {"joint": 1, "single": 2, "half": 2}
    for side in sides:
        cap = arguments.epochs if side != "half" else max(1, arguments.epochs // 2)
        ran = epochs_run[side]
        print(
            f"{titles[side]}: {sum(ran)} epochs run of {cap * runs_per_seed[side] * arguments.seeds} allowed "
            f"(early stopping ended runs before the cap: {sum(ran) < cap * runs_per_seed[side] * arguments.seeds})"
        )
    item = 1 / sizes["test"]  # what one test image is worth
    print(f"one test image is {item * 100:.2f} points: a gap within its spread, or of one image or less, is noise")
    for side in sides[1:]:
        for task in TASKS:
            gaps = [joint_ - other for joint_, other in zip(accuracy["joint"][task], accuracy[side][task], strict=True)]
            mean, deviation = statistics.fmean(gaps), statistics.stdev(gaps) if len(gaps) > 1 else 0.0
            noise = abs(mean) <= max(deviation, item + 1e-9)
            verdict = "within noise" if noise else "joint better" if mean > 0 else "joint WORSE"
            print(f"{task}: joint - {titles[side]} {mean * 100:+.1f} ± {deviation * 100:.1f} points ({verdict})")


if __name__ == "__main__":
    main()
