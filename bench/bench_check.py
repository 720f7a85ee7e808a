"""`zoo check` on a folder of 10,000 images: seconds, against decoding every image, side by side.

Images are small random JPEGs and PNGs (10 classes) written to a temporary folder. Both sides read the
same files; the decode side opens and fully loads each image with Pillow, which is what a check that
looked at pixels would cost at least. Target (issue 4): ≤ 10 s for 10,000 images.

    python bench/bench_check.py [--images 10000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_images(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"class{index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        size = (int(rng.integers(200, 400)), int(rng.integers(200, 400)))
        pixels = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).resize(size)
        image.save(folder / f"{index}.{'png' if index % 5 == 0 else 'jpg'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    count = parser.parse_args().images
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder:
        os.environ["ZOO_HOME"] = str(Path(folder) / "home")
        import zoo_core

        root = Path(folder) / "images"
        write_images(root, count)
        start = time.perf_counter()
        report = zoo_core.check("resnet18", root)
        checked = time.perf_counter() - start
        start = time.perf_counter()
        for path in root.rglob("*.*"):
            with Image.open(path) as image:
                image.load()
        decoded = time.perf_counter() - start
    print(f"{count} images in 10 classes; usable: {report.usable}")
    print(f"zoo check (headers, end markers, duplicate hashing): {checked:.2f} s  (target ≤ 10 s)")
    print(f"decoding every image with Pillow:                    {decoded:.2f} s")
    print(f"ratio decode / check: {decoded / checked:.1f}x")


if __name__ == "__main__":
    main()
