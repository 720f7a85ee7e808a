"""Three disjoint splits of a labelled dataset: train (fitting), validation (model selection, early stopping)
and test (reported once, for the saved model).

A split given as its own folder or file (``--val``, ``--test``) is used whole; otherwise it is a stratified
share of the data, drawn with the run's seed: the test share first, then the validation share, both as
shares of the whole dataset, every class on every side. Items that reach two splits — the same image file
or a copy of it, the same data given twice — are refused: a test figure on training images measures
memory, not transfer.
The splits go into the run folder as ``splits.json`` (items and class names), so `zoo evaluate` and
`zoo export` read exactly the images the run held out.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

from zoo_core.errors import DataError, RunOptionError
from zoo_core.hashing import file_digest
from zoo_core.training.data import Dataset, load_dataset, stratified_split
from zoo_core.training.runfolder import write_json

__all__ = ["Splits", "read_splits", "three_splits", "write_splits"]

SPLITS_FILE = "splits.json"


class Splits(NamedTuple):
    train: Dataset
    val: Dataset
    test: Dataset

    def named(self) -> dict[str, Dataset]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _held_out(
    dataset: Dataset, data: Path, share: float, seed: int, split: str, option: str, given: float
) -> tuple[Dataset, Dataset]:
    """(rest, held out): a `share` of every class, refusing a class that cannot spare one item; `given` is the
    user's --OPTION-split, for the message."""
    rest, held = stratified_split(dataset, share, seed)
    counts, held_labels, kept = Counter(dataset.labels), set(held.labels), set(rest.labels)
    for label, name in enumerate(dataset.classes):
        if label not in held_labels or label not in kept:
            count = counts[label]
            raise DataError(
                f"{data}: class '{name}' has {count} item{'s' if count != 1 else ''} left, too few for a {split} "
                f"split beside training (--{option}-split {given:g}); add items (3 or more per class), or give the "
                f"{split} set as its own folder or file with --{option}"
            )
    return rest, held


def _refuse_shared(splits: Splits) -> None:
    """One line when an image sits in two splits: the same file, or a copy with the same bytes (files are
    hashed only where sizes collide across splits). Texts may repeat legitimately and are not compared."""
    if splits.train.kind != "image":
        return
    by_size: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, dataset in splits.named().items():
        for item in dataset.items:
            by_size[Path(item).stat().st_size].append((name, item))
    for same_size in by_size.values():
        if len({name for name, _ in same_size}) < 2:
            continue
        seen: dict[str, tuple[str, str]] = {}
        for name, item in same_size:
            where, first = seen.setdefault(file_digest(Path(item)), (name, item))
            if where != name:
                copy = "" if Path(first).resolve() == Path(item).resolve() else f" (a copy of {first})"
                raise DataError(
                    f"{item}{copy} is in both the {where} and the {name} split: the splits must be disjoint; give "
                    "--val and --test sets that share no image with the training data"
                )


def three_splits(
    data: Path, kind: str, *, val: Path | None, test: Path | None, val_split: float, test_split: float, seed: int
) -> Splits:
    """Train, validation and test sets of `data` (see the module docstring); at least two classes."""
    dataset = load_dataset(data, kind)
    if len(dataset.classes) < 2:
        found = ", ".join(repr(name) for name in dataset.classes) or "none"
        raise DataError(
            f"{data}: a classifier needs at least two classes, found {len(dataset.classes)} ({found}); add one "
            f"{'subfolder' if kind == 'image' else 'label'} per class"
        )
    sources = {
        "DATA": data.resolve(),
        "--val": val.resolve() if val else None,
        "--test": test.resolve() if test else None,
    }
    given = [(option, path) for option, path in sources.items() if path is not None]
    for position, (option, path) in enumerate(given):
        for other, other_path in given[position + 1 :]:
            if path == other_path:
                raise RunOptionError(f"{other} {path} is also {option}: each split needs its own data")
    if not val and not test and val_split + test_split >= 1:
        raise RunOptionError(
            f"--val-split {val_split:g} and --test-split {test_split:g} leave nothing to train on; their sum must "
            "be below 1"
        )
    rest = dataset
    if test:
        test_set = load_dataset(test, kind, dataset.classes)
    else:
        rest, test_set = _held_out(dataset, data, test_split, seed, "test", "test", test_split)
    if val:
        val_set = load_dataset(val, kind, dataset.classes)
    else:  # a share of the whole dataset, taken from what the test split left
        share = val_split if test else val_split / (1 - test_split)
        rest, val_set = _held_out(rest, data, share, seed + 1, "validation", "val", val_split)
    splits = Splits(rest, val_set, test_set)
    _refuse_shared(splits)
    return splits


def write_splits(splits: Splits, folder: Path) -> None:
    """``splits.json``: each split's items (absolute image paths, or the texts) and class names, in order."""
    write_json(
        folder / SPLITS_FILE,
        {
            name: {"items": dataset.items, "labels": [dataset.classes[label] for label in dataset.labels]}
            for name, dataset in splits.named().items()
        },
    )


def read_splits(folder: Path, kind: str, classes: list[str]) -> Splits:
    """The splits a run folder recorded, as datasets over the run's `classes`."""
    saved = json.loads((folder / SPLITS_FILE).read_text(encoding="utf-8"))
    index = {name: position for position, name in enumerate(classes)}
    return Splits(
        *(
            Dataset(kind, list(saved[name]["items"]), [index[label] for label in saved[name]["labels"]], classes)
            for name in ("train", "val", "test")
        )
    )
