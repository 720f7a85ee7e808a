"""A labelled dataset for training: image folders (one subfolder per class) or labelled text files.

Items are file paths (images) or strings (texts); labels are indices into `classes`. The fingerprint
changes when any file, name or label changes, and keys the feature cache.
"""

from __future__ import annotations

import hashlib
import random
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from zoo_core.errors import DataError
from zoo_core.images import class_folders, labelled_images, read_headers
from zoo_core.textdata import read_texts

__all__ = ["Dataset", "dataset_kind", "load_dataset", "same_text", "stratified_split"]


@dataclass(frozen=True)
class Dataset:
    kind: str  # "image" or "text"
    items: list[str]  # image paths, or texts
    labels: list[int]
    classes: list[str]

    def subset(self, indices: list[int]) -> Dataset:
        return Dataset(self.kind, [self.items[i] for i in indices], [self.labels[i] for i in indices], self.classes)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.kind.encode())
        for item, label in zip(self.items, self.labels, strict=True):
            stamp = ""
            if self.kind == "image":
                stat = Path(item).stat()
                stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
            digest.update(f"{item}\0{stamp}\0{self.classes[label]}\n".encode())
        return digest.hexdigest()[:16]


def _image_pairs(data: Path) -> list[tuple[str, str]]:
    """(path, class folder) for each image, listed and tested for readability as `zoo check` does: a file
    it reports as unreadable (not an image, truncated, too large to decode safely) is skipped here, with one
    warning that says how many and names the first."""
    if not class_folders(data):
        raise DataError(f"{data}: training needs one subfolder per class, each holding that class's images")
    files = labelled_images(data)
    headers, skipped = read_headers([path for path, _ in files])
    if skipped:
        warnings.warn(
            f"{data}: skipped {len(skipped)} unreadable or truncated image(s), the first {skipped[0]}; "
            f"`zoo check` lists them: re-download or delete them",
            stacklevel=3,
        )
    return [(str(path), label) for path, label in files if path in headers]


def _text_pairs(data: Path, label_column: str | None) -> list[tuple[str, str]]:
    """(text, label) for each row with a text and a label; a text without a label (a multi-task file may label
    a row for one task only) is left out, with one warning that counts them and quotes the first."""
    texts = read_texts(data, label_column)
    if texts.labels is None:
        others = texts.other_columns()
        hint = f"; or name the task after one of its columns ({', '.join(others)})" if label_column and others else ""
        raise DataError(f"{data}: training needs a label column (label, class or category){hint}")
    pairs = [(text, label) for text, label in zip(texts.texts, texts.labels, strict=True) if text.strip()]
    unlabelled = [text for text, label in pairs if not label.strip()]
    if unlabelled:
        warnings.warn(
            f"{data}: left out {len(unlabelled)} text(s) with no {texts.label_column}, "
            f"the first {unlabelled[0][:60]!r}",
            stacklevel=4,
        )
    return [(text, label) for text, label in pairs if label.strip()]


def load_dataset(
    data: Path, modality: str, classes: list[str] | None = None, label_column: str | None = None
) -> Dataset:
    """Read a dataset; `classes` fixes the label order (a validation set follows its training set), and a text
    file's labels come from `label_column` where it has that column (`read_texts`)."""
    if not data.exists():
        where = "" if data.is_absolute() else f" in {Path.cwd()}"
        raise DataError(f"{data}: not found{where}; check the path")
    if modality == "image":
        pairs = _image_pairs(data)
        kind = "image"
    else:
        pairs = _text_pairs(data, label_column)
        kind = "text"
    names = classes or sorted({label for _, label in pairs})
    unknown = sorted({label for _, label in pairs} - set(names))
    if unknown:
        raise DataError(f"{data}: labels {unknown} are not among the training classes {names}")
    index = {name: position for position, name in enumerate(names)}
    return Dataset(kind, [item for item, _ in pairs], [index[label] for _, label in pairs], names)


def dataset_kind(modality: str) -> str:
    """The kind of a model's datasets: "image", or "text" (for text encoders and word vectors alike)."""
    return "image" if modality == "image" else "text"


def same_text(text: str) -> str:
    """What two texts share when they are the same sentence: case and spacing aside."""
    return " ".join(text.split()).casefold()


def stratified_split(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(kept, held out): about `fraction` of every class held out, at least one item, and at least one kept.

    Repeated texts of a class move together, so no sentence lands on both sides (images are compared by
    their bytes after the split, in `splits`)."""
    by_class: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for position, (item, label) in enumerate(zip(dataset.items, dataset.labels, strict=True)):
        key = same_text(item) if dataset.kind == "text" else str(position)
        by_class[label][key].append(position)
    generator = random.Random(seed)
    kept: list[int] = []
    held: list[int] = []
    for label in sorted(by_class):
        groups = list(by_class[label].values())
        generator.shuffle(groups)
        count = max(1, round(sum(map(len, groups)) * fraction)) if len(groups) > 1 else 0
        taken = 0
        for group in groups:
            side = held if taken < count and group is not groups[-1] else kept
            side += group
            taken += len(group) if side is held else 0
    return dataset.subset(sorted(kept)), dataset.subset(sorted(held))
