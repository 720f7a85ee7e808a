"""Does `zoo adapt` recover accuracy lost to a shift, without labels? Each method on shifted digits.

The run: the digits source model (resnet10t developed on digits 0-4, 32x32 grey, `develop_source`) fine-tuned
on digits 5-9 (`--strategy finetune`, 20 training and 20 validation images a class, lr 3e-3, batch 16, 15
epochs, patience 5), trained once per seed: zoo's own demo model fine-tuned as a user would, its BatchNorm
statistics estimated from few images, as a user's would be.

The shifts, applied to the run's held-out test images (every target image not used for training or
validation): ``clean`` (none: the control, adaptation must not hurt), ``inverted`` (255 - grey), ``rotated``
(30 degrees), ``noisy`` (Gaussian noise, sigma 64 grey levels, clipped) and ``blurred`` (Gaussian blur of
radius 1 pixel of the 8x8 originals). Each shifted test set is cut in two by alternating images: one half
is the unlabelled target the run adapts to (a flat folder), the other, disjoint, is the labelled set the
accuracy is measured on (``--labelled``: measured only). Beside it, the "shift" finding of `zoo check RUN DATA`
(`zoo_core.domain.confidence_change`): the change of the run's relative confidence from its validation split
to the target, and on how many seeds it warns (at ±`SHIFT_CHANGE`); the run's own test split is measured too,
as the case that must stay quiet.

Each method runs with its defaults (adabn; tent: 1 epoch, Adam 1e-3; pseudo: AdaBN, then 3 epochs, Adam 1e-4,
threshold 0.9), batch 32, one thread, seed = the run's seed. Figures are mean ± std over the seeds (the run's
seed and the adaptation's); pseudo is refused on a seed where fewer than 2 target images reach the threshold,
and the table says on how many. Prints a table; ``--json FILE`` writes every figure. About 4 minutes of CPU
for 3 seeds.

    python bench/bench_adapt.py [--seeds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core.domain import SHIFT_CHANGE

SHOTS = 20
METHODS = ("adabn", "tent", "pseudo")
SOURCE = "digits-src.resnet10t"


def _shifts() -> dict[str, Callable[[Any, np.random.Generator], Any]]:
    """Each shift: an 8x8 grey digit (PIL image) and a generator to a shifted image."""
    from PIL import Image, ImageFilter, ImageOps

    def noisy(image: Any, rng: np.random.Generator) -> Any:
        pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, 64, (image.height, image.width))
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")

    return {
        "clean": lambda image, _: image,
        "inverted": lambda image, _: ImageOps.invert(image),
        "rotated": lambda image, _: image.rotate(30, resample=Image.Resampling.BILINEAR),
        "noisy": noisy,
        "blurred": lambda image, _: image.filter(ImageFilter.GaussianBlur(1)),
    }


def write_shifted(
    test: Path, root: Path, name: str, shift: Callable[[Any, np.random.Generator], Any]
) -> tuple[Path, Path]:
    """(the unlabelled target folder, the labelled folder): the test images shifted, alternately to each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    target, labelled = root / name / "target", root / name / "labelled"
    for index, path in enumerate(sorted(test.rglob("*.png"))):
        folder = target if index % 2 == 0 else labelled / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        shift(Image.open(path).convert("L"), rng).save(folder / f"{path.parent.name}-{path.name}")
    return target, labelled


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _figure(spread: dict[str, float], percent: bool = True) -> str:
    if percent:
        return f"{spread['mean']:.1%} ± {spread['std']:.1%}"
    return f"{spread['mean']:+.2f} ± {spread['std']:.2f}"


def _cell(found: dict[str, Any], key: str) -> str:
    """A method's figure over the seeds it ran on, saying on how many it was refused."""
    refused = len(found.get(f"{key} refused", []))
    if key not in found:
        return f"refused ({refused})" if refused else "-"
    return _figure(found[key]) + (f" (refused on {refused})" if refused else "")


def measure(root: Path, seeds: int) -> dict[str, Any]:
    """Every figure of the benchmark, per shift: the check's drop, accuracy before and after each method."""
    from zoo_core.catalogue_sources import default_catalogue, reset_catalogue
    from zoo_core.domain import confidence_change
    from zoo_core.errors import DataError
    from zoo_core.image_check import labelled_files
    from zoo_core.training.adapt import adapt
    from zoo_core.training.adapt_options import AdaptOptions
    from zoo_core.training.digits import develop_source, write_digits
    from zoo_core.training.run import FinetuneOptions, finetune
    from zoo_core.training.saved import load_run

    folders = write_digits(root / "data", shots=SHOTS)
    develop_source(folders, root / "source", SOURCE)
    reset_catalogue()
    shifted = {name: write_shifted(folders.test, root / "shifted", name, shift) for name, shift in _shifts().items()}
    runs: dict[str, dict[str, list[float]]] = {}
    for seed in range(seeds):
        run = root / f"run-{seed}"
        options = FinetuneOptions(
            strategy="finetune",
            val=str(folders.val),
            test=str(folders.test),
            epochs=15,
            patience=5,
            lr=3e-3,
            batch_size=16,
            seed=seed,
            device="cpu",
        )
        finetune(SOURCE, folders.train, run, options)
        saved = load_run(run, default_catalogue())
        own_test = [str(path) for path, _ in labelled_files(folders.test)]
        runs.setdefault("own test split", {}).setdefault("change", []).append(confidence_change(saved, own_test)[2])
        for name, (target, labelled) in shifted.items():
            figures = runs.setdefault(name, {})
            items = [str(path) for path, _ in labelled_files(target)]
            figures.setdefault("change", []).append(confidence_change(saved, items)[2])
            for method in METHODS:
                chosen = AdaptOptions(seed=seed, device="cpu")
                out = root / f"adapted-{seed}-{name}-{method}"
                try:
                    metrics = adapt(run, target, out, method, chosen, labelled)
                except DataError as refused:  # pseudo: too few confident predictions to train on
                    figures.setdefault(f"{method} refused", []).append(str(refused))
                    continue
                if method == METHODS[0]:  # adabn, never refused: the run's accuracy before, once a seed
                    figures.setdefault("before", []).append(metrics["labelled"]["accuracy_before"])
                figures.setdefault(method, []).append(metrics["labelled"]["accuracy_after"])
                figures.setdefault(f"{method} seconds", []).append(metrics["seconds"])
    return {
        name: {
            key: {**_spread(values), "values": values} if "refused" not in key else values
            for key, values in found.items()
        }
        for name, found in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Write every figure here.")
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["ZOO_HOME"] = str(Path(folder) / "home")
        os.environ["HF_HOME"] = str(Path(folder) / "hf")
        results = measure(Path(folder), args.seeds)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"digits 5-9 run, {args.seeds} seeds; accuracy on the labelled half of each shifted test set, mean ± std")
    header = ["shift", "check change", "warns", "before", *METHODS]
    rows = [
        [
            name,
            _figure(found["change"], percent=False),
            f"{sum(abs(value) >= SHIFT_CHANGE for value in found['change']['values'])}/{args.seeds}",
            *(_cell(found, key) for key in ["before", *METHODS]),
        ]
        for name, found in results.items()
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(f"wall {wall:.0f} s, CPU {cpu:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, "results": results, "wall_seconds": wall}, indent=2))


if __name__ == "__main__":
    main()
