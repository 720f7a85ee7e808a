"""The offline demo data: scikit-learn's handwritten digits (8x8, 1,797 images) as image folders.

Source task: digits 0-4, all their images. Target task: digits 5-9 with `shots` labelled images per
class; the other target images are the held-out test set. Used by `zoo quickstart` and the examples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_digits"]

SOURCE_DIGITS = range(5)


def write_digits(root: Path, shots: int = 10, seed: int = 0) -> tuple[Path, Path, Path]:
    """Image folders (one per digit) for the source task, the target training set and the target test set."""
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
            split = "target-train" if seen[label] <= shots else "target-test"
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[index] * (255 / 16)).astype(np.uint8)  # 0-16 ink levels to 0-255 grey
        Image.fromarray(pixels, mode="L").save(folder / f"{index}.png")
    return root / "source", root / "target-train", root / "target-test"
