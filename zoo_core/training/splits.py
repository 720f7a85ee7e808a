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
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

from zoo_core.errors import DataError, RunOptionError
from zoo_core.hashing import file_digest
from zoo_core.training.data import Dataset, load_dataset, same_text, stratified_split
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
            distinct = ""
            if dataset.kind == "text":  # repeated texts move together: fewer different ones than items
                texts = {same_text(item) for item, of in zip(dataset.items, dataset.labels, strict=True) if of == label}
                distinct = f" ({len(texts)} different: a repeated text stays on one side)" if len(texts) < count else ""
            items = f"{count} item{'s' if count != 1 else ''}"
            raise DataError(
                f"{data}: class '{name}' has {items} left{distinct}, too few for a {split} split beside training "
                f"(--{option}-split {given:g}); add items (3 or more per class), or give the {split} set as its own "
                f"folder or file with --{option}"
            )
    return rest, held


def _content_keys(dataset: Dataset, sizes: dict[int, set[str]] | None) -> list[str]:
    """What makes two items the same: a text's words (case and spacing aside); an image's bytes — hashed only
    when another split holds a file of its size (`sizes`: file size -> the splits holding one)."""
    if dataset.kind == "text":
        return [same_text(item) for item in dataset.items]
    assert sizes is not None
    keys = []
    for item in dataset.items:
        size = Path(item).stat().st_size
        keys.append(file_digest(Path(item)) if len(sizes[size]) > 1 else f"{item}\0unique size")
    return keys


def _refuse_shared(splits: Splits, data: Path, given: dict[str, Path | None]) -> None:
    """One line when an item sits in two splits: the same image file or a copy of its bytes, or the same text.
    `given` names the splits that came from their own folder or file (--val, --test) rather than from `data`."""
    sizes: dict[int, set[str]] | None = None
    if splits.train.kind == "image":
        sizes = defaultdict(set)
        for name, dataset in splits.named().items():
            for item in dataset.items:
                sizes[Path(item).stat().st_size].add(name)
    seen: dict[str, tuple[str, str]] = {}
    for name, dataset in splits.named().items():
        for item, key in zip(dataset.items, _content_keys(dataset, sizes), strict=True):
            where, first = seen.setdefault(key, (name, item))
            if where == name:
                continue
            if given.get(where) is None and given.get(name) is None:
                raise DataError(
                    f"{data} holds {first!r} twice (the second: {item!r}): the random split put the "
                    f"copies in the {where} and the {name} split; delete one of them"
                )
            copy = "" if first == item else f" (the same as {first!r})"
            raise DataError(
                f"{item!r}{copy} is in both the {where} and the {name} split: the splits must be disjoint; give "
                "--val and --test sets that share nothing with the training data"
            )


def _given(path: Path, kind: str, classes: list[str], option: str) -> Dataset:
    """A split given whole; one that lacks some classes is used, with a warning that names them."""
    dataset = load_dataset(path, kind, classes)
    absent = [name for label, name in enumerate(classes) if label not in set(dataset.labels)]
    if absent:
        warnings.warn(
            f"{option} {path}: no items of class(es) {', '.join(absent)}; its figures speak for the other classes only",
            stacklevel=3,
        )
    return dataset


def three_splits(
    data: Path,
    kind: str,
    *,
    val: Path | None,
    test: Path | None,
    val_split: float,
    test_split: float,
    seed: int,
    label_column: str | None = None,
) -> Splits:
    """Train, validation and test sets of `data` (see the module docstring); at least two classes. A text
    file's labels come from `label_column` where it has one (`read_texts`)."""
    dataset = load_dataset(data, kind, label_column=label_column)
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
        test_set = _given(test, kind, dataset.classes, "--test")
    else:
        rest, test_set = _held_out(dataset, data, test_split, seed, "test", "test", test_split)
    if val:
        val_set = _given(val, kind, dataset.classes, "--val")
    else:  # a share of the whole dataset, taken from what the test split left
        share = val_split if test else val_split / (1 - test_split)
        rest, val_set = _held_out(rest, data, share, seed + 1, "validation", "val", val_split)
    splits = Splits(rest, val_set, test_set)
    _refuse_shared(splits, data, {"val": val, "test": test})
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
    for name in ("train", "val", "test"):
        items, labels = saved[name]["items"], saved[name]["labels"]
        if not (isinstance(items, list) and isinstance(labels, list) and len(items) == len(labels)):
            raise ValueError(f"split {name!r}: items and labels must be lists of the same length")
        if not all(isinstance(item, str) for item in items):
            raise ValueError(f"split {name!r}: every item must be a string (an image path, or a text)")
    return Splits(
        *(
            Dataset(kind, list(saved[name]["items"]), [index[label] for label in saved[name]["labels"]], classes)
            for name in ("train", "val", "test")
        )
    )
