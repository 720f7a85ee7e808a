"""Does `zoo adapt` recover accuracy lost to a shift, without labels, and leave unshifted data alone? Each
method on shifted digits, and the "shift" warning of `zoo check RUN DATA` chosen on some runs and judged on others.

The runs: the digits source model (resnet10t developed on digits 0-4, 32x32 grey, `develop_source`) trained
on digits 5-9 with 20 training and 20 validation images a class, lr 3e-3, batch 16, as a user would: its
BatchNorm statistics estimated from few images, as a user's would be. ``finetune``: `--strategy finetune`,
15 epochs, patience 5, once per seed; ``features``: `--strategy features` (a frozen backbone, only the head
trained), 15 epochs, seed 0; ``finetune 3 ep``: `--strategy finetune`, 3 epochs (a weak run), seed 0.

The held-out images (every image of digits 5-9 not used for training or validation) are cut in two by
alternating images within each class: one half is the runs' test split (`--test`), the other the images that
are shifted. The shifts: ``clean`` (none: the control, adaptation must not hurt and the check must stay
quiet), ``inverted`` (255 - grey), ``rotated`` (30 degrees), ``noisy`` (Gaussian noise, sigma 64 grey
levels, clipped) and ``blurred`` (Gaussian blur of radius 1 pixel of the 8x8 originals). Each shifted set is
cut in two by alternating images: one half is the unlabelled target the run adapts to (a flat folder), the
other, disjoint, is the labelled set the accuracy is measured on (``--labelled``: measured only).

Beside it, the "shift" finding of `zoo check RUN DATA` (`zoo_core.domain.confidence_change`): the change of
the run's relative confidence from its test split to the target. Its line, `SHIFT_CHANGE`, is chosen on the
finetune runs of seeds 0 and 1 (between the widest unshifted change and the narrowest shifted one) and judged
on the others (finetune seed 2 and up, features, finetune 3 ep), which played no part in choosing it.

Each method runs with its defaults (adabn; tent: 1 epoch, Adam 1e-3; pseudo: AdaBN, then 3 epochs, Adam 1e-4,
threshold 0.9), batch 32, one thread, seed = the run's seed. On a features run adabn and tent are refused (it
trained no normalisation layer). Figures are mean ± std over the seeds (n: how many); pseudo is refused on a
seed where fewer than 2 target images reach the threshold, and the table says on how many. Prints a table;
``--json FILE`` writes every figure. About 6 minutes of CPU for 3 seeds.

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


def split_test(test: Path, root: Path) -> tuple[Path, Path]:
    """(the runs' test folder, the folder of images to shift): `test`'s images alternately to each, by class."""
    import shutil

    halves = root / "test", root / "fresh"
    for folder in sorted(path for path in test.iterdir() if path.is_dir()):
        for index, path in enumerate(sorted(folder.glob("*.png"))):
            (halves[index % 2] / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, halves[index % 2] / folder.name / path.name)
    return halves


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _figure(values: list[float], percent: bool = True) -> str:
    """The mean ± std of `values`; the value alone when there is one, which has no std."""
    style = ".1%" if percent else "+.2f"
    if len(values) == 1:
        return format(values[0], style)
    return f"{statistics.mean(values):{style}} ± {statistics.stdev(values):{style.lstrip('+')}}"


def _cell(found: dict[str, Any], key: str) -> str:
    """A method's figure over the seeds it ran on, saying on how many it was refused."""
    refused = len(found.get(f"{key} refused", []))
    if key not in found:
        return f"refused ({refused})" if refused else "-"
    return _figure(found[key]) + (f" (refused on {refused})" if refused else "")


RUNS = {  # name: (strategy, epochs, the seeds it is trained on: None for every seed)
    "finetune": ("finetune", 15, None),
    "features": ("features", 15, (0,)),
    "finetune 3 ep": ("finetune", 3, (0,)),
}
CALIBRATION = ("finetune", (0, 1))  # the runs the shift line is chosen on; every other run judges it


def _adapt_all(run: Path, root: Path, shifted: dict[str, tuple[Path, Path]], seed: int) -> dict[str, dict[str, Any]]:
    """Each method on each shifted target: {shift: {"before": accuracy, method: accuracy after, or
    "method refused": why}}."""
    from zoo_core.errors import DataError, RunOptionError
    from zoo_core.training.adapt import adapt
    from zoo_core.training.adapt_options import AdaptOptions

    found: dict[str, dict[str, Any]] = {}
    for name, (target, labelled) in shifted.items():
        figures = found.setdefault(name, {})
        for method in METHODS:
            try:
                metrics = adapt(
                    run,
                    target,
                    root / f"{run.name}-{name}-{method}",
                    method,
                    AdaptOptions(seed=seed, device="cpu"),
                    labelled,
                )
            except (DataError, RunOptionError) as refused:  # too few confident predictions; a features run
                figures[f"{method} refused"] = str(refused)
                continue
            figures["before"] = metrics["labelled"]["accuracy_before"]
            figures[method] = metrics["labelled"]["accuracy_after"]
            figures[f"{method} seconds"] = metrics["seconds"]
    return found


def measure(root: Path, seeds: int) -> dict[str, Any]:
    """Every figure of the benchmark: {run: {shift: {figure: [one value per seed]}}}, and each run's seeds."""
    from zoo_core.catalogue_sources import default_catalogue, reset_catalogue
    from zoo_core.domain import confidence_change
    from zoo_core.image_check import labelled_files
    from zoo_core.training.digits import develop_source, write_digits
    from zoo_core.training.run import FinetuneOptions, finetune
    from zoo_core.training.saved import load_run

    folders = write_digits(root / "data", shots=SHOTS)
    develop_source(folders, root / "source", SOURCE)
    reset_catalogue()
    test, fresh = split_test(folders.test, root / "held-out")
    shifted = {name: write_shifted(fresh, root / "shifted", name, shift) for name, shift in _shifts().items()}
    results: dict[str, dict[str, dict[str, list[Any]]]] = {}
    trained: dict[str, list[int]] = {}
    for name, (strategy, epochs, only) in RUNS.items():
        for seed in only or range(seeds):
            run = root / f"{name.replace(' ', '-')}-{seed}"
            options = FinetuneOptions(
                strategy=strategy,
                val=str(folders.val),
                test=str(test),
                epochs=epochs,
                patience=5,
                lr=3e-3,
                batch_size=16,
                seed=seed,
                device="cpu",
            )
            finetune(SOURCE, folders.train, run, options)
            trained.setdefault(name, []).append(seed)
            saved = load_run(run, default_catalogue())
            adapted = _adapt_all(run, root / "adapted", shifted, seed)
            for shift, (target, _) in shifted.items():
                figures = results.setdefault(name, {}).setdefault(shift, {})
                items = [str(path) for path, _ in labelled_files(target)]
                figures.setdefault("change", []).append(confidence_change(saved, items)[2])
                for key, value in adapted[shift].items():
                    figures.setdefault(key, []).append(value)
    return {"seeds": trained, "results": results}


def _line(results: dict[str, Any], seeds: dict[str, list[int]]) -> tuple[list[str], list[str]]:
    """(how the line is chosen, how `SHIFT_CHANGE` does elsewhere): on the calibration runs, the midpoint
    between the widest change of a clean target and the narrowest of a shifted one, rounded to hundredths as
    the check prints; then, on every other run, which shifted targets it warns on and whether clean stays quiet."""
    run, chosen_on = CALIBRATION
    picked = [seeds[run].index(seed) for seed in chosen_on if seed in seeds[run]]
    changes = {shift: [abs(found["change"][at]) for at in picked] for shift, found in results[run].items()}
    clean = max(changes.pop("clean"))
    shifted = min(min(values) for values in changes.values())
    chosen = [
        f"line chosen on {run} seeds {', '.join(str(seeds[run][at]) for at in picked)}: clean targets change by at "
        f"most {clean:.2f}, shifted ones by at least {shifted:.2f}; midway: ±{round((clean + shifted) / 2, 2):.2f} "
        f"(zoo_core.domain.SHIFT_CHANGE: {SHIFT_CHANGE})"
    ]
    judged = []
    for name, found in results.items():
        for at, seed in enumerate(seeds[name]):
            if name == run and seed in chosen_on:
                continue
            warned = {shift: abs(figures["change"][at]) >= SHIFT_CHANGE for shift, figures in found.items()}
            clean_warns = warned.pop("clean")
            missed = ", ".join(
                f"{shift} {found[shift]['change'][at]:+.2f}" for shift, warns in warned.items() if not warns
            )
            judged.append(
                f"held out, {name} seed {seed}: warns on {sum(warned.values())} of {len(warned)} shifted targets "
                f"(missed: {missed or 'none'}), clean {found['clean']['change'][at]:+.2f} "
                f"({'warns' if clean_warns else 'quiet'})"
            )
    return chosen, judged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Write every figure here.")
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["ZOO_HOME"] = str(Path(folder) / "home")
        os.environ["HF_HOME"] = str(Path(folder) / "hf")
        measured = measure(Path(folder), args.seeds)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    results, seeds = measured["results"], measured["seeds"]
    print(
        "accuracy on the labelled half of each shifted set, mean ± std over n seeds; check: change from the test split"
    )
    header = ["run", "shift", "n", "check change", "warns", "before", *METHODS]
    rows = [
        [
            run,
            shift,
            str(len(found["change"])),
            _figure(found["change"], percent=False),
            f"{sum(abs(value) >= SHIFT_CHANGE for value in found['change'])}/{len(found['change'])}",
            *(_cell(found, key) for key in ["before", *METHODS]),
        ]
        for run, shifts in results.items()
        for shift, found in shifts.items()
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    chosen, judged = _line(results, seeds)
    print("\n".join([*chosen, *judged]))
    print(f"wall {wall:.0f} s, CPU {cpu:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({**measured, "wall_seconds": wall}, indent=2))


if __name__ == "__main__":
    main()
