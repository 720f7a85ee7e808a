"""The splits of a multi-task run: each task's own train/validation/test, and the items of all tasks together.

Each task is split as a single-task run splits its data (`run_splits`: the same shares, seed and refusals;
a CSV or JSONL gives the task the labels of the column named as the task where it has one, so one file with
several label columns serves several tasks), then one rule more is applied in task order: an item another
task already placed — the same image bytes, or the same text (case and spacing aside) — moves to that task's
split. Otherwise a test image of one task could train the shared backbone through another task, and that
task's test figure would measure memory. A class the move leaves with no item in a split is refused in one
line.

Training sees the tasks together (`Joint`): each distinct item once per split, with its label in every task
(-1 where the item is not one of that task's), so an image two tasks share goes through the backbone once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo_core.errors import DataError
from zoo_core.hashing import file_digest
from zoo_core.textdata import read_texts
from zoo_core.training.data import Dataset, same_text
from zoo_core.training.options import FinetuneOptions
from zoo_core.training.splits import Splits

__all__ = ["SPLIT_NAMES", "Joint", "joint", "task_splits"]

SPLIT_NAMES = ("train", "val", "test")
SPLIT_TITLES = {"train": "training", "val": "validation", "test": "test"}
UNLABELLED = -1  # a joint item's label in a task it is not part of


@functools.cache
def _digest(path: str) -> str:
    return file_digest(Path(path))


def _content(kind: str, item: str) -> str:
    """What makes two items of different tasks the same item: an image's bytes, a text's words."""
    return same_text(item) if kind == "text" else _digest(item)


def _refuse_emptied(name: str, data: Path, splits: Splits) -> None:
    for split, dataset in splits.named().items():
        present = set(dataset.labels)
        for label, title in enumerate(dataset.classes):
            if label not in present:
                raise DataError(
                    f"--task {name}={data}: class '{title}' has no {SPLIT_TITLES[split]} item left once the items it "
                    "shares with the tasks before it take their split there; add items of that class, or share fewer"
                )


def _refuse_one_column(tasks: Mapping[str, Path]) -> None:
    """Two tasks of one text file that would both read its ``label`` column (a task named after no column
    falls back to it) would learn the same labels twice: refused, naming the file's columns."""
    taken: dict[tuple[Path, str], str] = {}
    for name, data in tasks.items():
        texts = read_texts(data, name)
        if texts.label_column is None:
            continue  # refused as it is split, naming the columns
        earlier = taken.setdefault((data.resolve(), texts.label_column), name)
        if earlier != name:
            raise DataError(
                f"--task {name}={data}: its labels would be column {texts.label_column!r}, as task {earlier}'s; "
                f"name each task after its own label column ({', '.join(texts.other_columns())})"
            )


def task_splits(tasks: Mapping[str, Path], kind: str, options: FinetuneOptions, seed: int) -> dict[str, Splits]:
    """Each task's splits for `seed` (see the module docstring); `tasks` maps a name to its data."""
    from zoo_core.training.run import run_splits

    if kind == "text":
        _refuse_one_column(tasks)
    placed: dict[str, str] = {}  # an item's content -> the split the first task holding it put it in
    found = {}
    for name, data in tasks.items():
        try:
            drawn = run_splits(data, kind, options, seed, label_column=name)
        except DataError as error:  # two tasks may share the file it names: say which task
            raise DataError(f"--task {name}: {error}") from None
        moved: dict[str, tuple[list[str], list[int]]] = {split: ([], []) for split in SPLIT_NAMES}
        for split, dataset in drawn.named().items():
            for item, label in zip(dataset.items, dataset.labels, strict=True):
                items, labels = moved[placed.setdefault(_content(kind, item), split)]
                items.append(item)
                labels.append(label)
        classes = drawn.train.classes
        splits = Splits(*(Dataset(kind, items, labels, classes) for items, labels in moved.values()))
        _refuse_emptied(name, data, splits)
        found[name] = splits
    return found


@dataclass(frozen=True)
class Joint:
    """One split of every task together."""

    items: Dataset  # each distinct item once; its labels are all 0: it is what batches and the feature cache read
    labels: np.ndarray  # (items, tasks): each item's class in each task, or -1 where it is not that task's
    rows: dict[str, list[int]]  # per task: the row of each of its split's items, in the task's order


def joint(splits: Mapping[str, Splits], split: str) -> Joint:
    """The items of `split` ("train", "val" or "test") over all tasks, in task order."""
    kind = next(iter(splits.values())).train.kind
    row_of: dict[str, int] = {}
    items: list[str] = []
    labels: list[list[int]] = []
    rows: dict[str, list[int]] = {}
    for column, (name, task) in enumerate(splits.items()):
        dataset = task.named()[split]
        rows[name] = []
        for item, label in zip(dataset.items, dataset.labels, strict=True):
            row = row_of.setdefault(_content(kind, item), len(items))
            if row == len(items):
                items.append(item)
                labels.append([UNLABELLED] * len(splits))
            labels[row][column] = label
            rows[name].append(row)
    table = np.asarray(labels, dtype=np.int64).reshape(len(items), len(splits))
    return Joint(Dataset(kind, items, [0] * len(items), ["item"]), table, rows)
