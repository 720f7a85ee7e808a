"""How far the user's data is from what a model was pretrained on: the source/target similarity finding
(check "domain") that `zoo check` and `zoo rank` report.

- An image model with its pretrained classifier: the mean max-softmax probability of that classifier over a
  sample of the target (Hendrycks & Gimpel, ICLR 2017: a classifier is less sure of inputs unlike its
  training data). So that models with any number of classes K compare, the mean m is read on a log scale
  from chance to certainty, ``log(K * m) / log(K)``: 0 at chance (m = 1/K), 1 when certain. Under
  `CONFIDENCE_NEAR` the data is far. A classifier as sure of random noise as that line is not asked: its
  confidence cannot tell near from far (a small network trained from scratch, as `zoo pretrain` makes, is
  sure of anything).
- Word vectors: the share of the target's tokens that the vocabulary holds (`token_coverage`); under
  `COVERAGE_NEAR` the text is far. The wordvec plugin's `oov` finding counts the same tokens and warns at the
  same line, so that the two never disagree on one count.
- Any other model (no classifier, no vocabulary: a headless network, a sentence encoder): "ok", not
  measured, saying why.

For a trained run (`zoo check RUN_FOLDER DATA`), the "shift" finding asks the run's own classifier the same
question about the data it was trained for: its relative confidence on DATA against that on the run's own
test split (`run_shift`; held out, unlike the validation split, which picked the epoch and so is met with
more confidence). A change of `SHIFT_CHANGE` or more, down or up, means DATA looks shifted from the training
data, and `zoo adapt` is suggested (for data it takes: a folder for a run on images, a file for one on
texts). Fewer than `SHIFT_MINIMUM` items are not measured: a mean over a handful of them moves by more than
the line. A multi-task run is not measured (its heads would each need their own finding).

The first two lines come from measurements, `python bench/bench_domain.py`; docs/rank.md quotes its figures.
The shift line comes from `python bench/bench_adapt.py`; docs/adapt.md quotes its figures.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from zoo_core.checks import CheckReport, Finding
from zoo_core.errors import ZooError
from zoo_core.specs import ImageInput, ModelSpec

if TYPE_CHECKING:
    from PIL.Image import Image

    from zoo_core.training.saved import SavedRun

__all__ = [
    "CONFIDENCE_NEAR",
    "COVERAGE_NEAR",
    "SAMPLE_SIZE",
    "SHIFT_CHANGE",
    "SHIFT_MINIMUM",
    "Vocabulary",
    "confidence_change",
    "data_similarity",
    "mean_max_softmax",
    "noise_images",
    "relative_confidence",
    "run_confidence",
    "run_shift",
    "source_similarity",
    "spread",
    "token_coverage",
]

SAMPLE_SIZE = 32  # images run through the classifier: enough for the mean, cheap on a CPU
# bench_domain, EfficientNet-Lite0/1/2: photos 0.85-0.90, digits 0.65-0.69, inverted digits 0.56-0.61: between
CONFIDENCE_NEAR = 0.75
# bench_domain, GloVe 6B: English texts 93.7%-100% of tokens known, Danish words 7.3%, letter salad 10.2%;
# a line at 95% (5% unknown) would call English docstrings (93.7%) and Python code (93.4%) far
COVERAGE_NEAR = 0.90
NOT_MEASURED = "not measured: "
SHIFT_SAMPLE = 256  # items of DATA and of the test split a run's classifier is asked about
SHIFT_MINIMUM = 30  # items of DATA below which the change is not measured
# bench_adapt, chosen on its finetune run of seeds 0-1: clean images change by at most 0.01 from the test split,
# shifted ones by at least 0.03 (inverted); midway. Judged on the runs it was not chosen on (finetune seed 2,
# features, a 3-epoch finetune): every clean target quiet, 11 of 12 shifted ones warned of (inverted +0.01 missed)
SHIFT_CHANGE = 0.02


@runtime_checkable
class Vocabulary(Protocol):
    """A model that knows a word list (word vectors): which tokens of some texts it lacks."""

    def unknown_words(self, texts: Iterable[str]) -> tuple[list[str], Counter[str]]:
        """Every token of `texts`, and the ones out of the vocabulary with their counts."""
        ...


def token_coverage(tokens: Sequence[str], unknown: Counter[str]) -> float:
    """The share of `tokens` that the vocabulary holds (`unknown` counts the others), rounded to a tenth of a
    percent as it is printed, so that the printed figure is the one held against `COVERAGE_NEAR`."""
    return round(1 - sum(unknown.values()) / len(tokens), 3)


def _not_measured(why: str) -> Finding:
    return Finding("domain", "ok", NOT_MEASURED + why)


def _unmeasurable(spec: ModelSpec) -> str | None:
    """Why the spec alone rules the measurement out, or None."""
    if spec.modality == "text":
        return f"{spec.name} encodes text with neither a source classifier nor a word list to hold the texts against"
    if spec.modality == "image" and (spec.output.num_classes or 0) < 2:
        classes = spec.output.num_classes
        return (
            f"{spec.name} has no source classifier whose confidence zoo could measure (output.num_classes is {classes})"
        )
    return None


def spread(items: Sequence[str], count: int) -> list[str]:
    """At most `count` items, evenly spaced: for data listed class by class, every class in proportion."""
    if len(items) <= count:
        return list(items)
    return [items[index * len(items) // count] for index in range(count)]


def source_similarity(spec: ModelSpec, backbone: Any, items: Sequence[str], transform: Any) -> Finding:
    """How far `items` (image paths or texts of the target) are from the model's source data.

    `backbone` is the model as `zoo_core.load` gives it: its pretrained classifier on, in eval mode. Images are
    sampled (`SAMPLE_SIZE`, evenly over `items`) and prepared with `transform`; texts are all counted.
    """
    why = _unmeasurable(spec)
    if why is not None:
        return _not_measured(why)
    if not items:
        return _not_measured(f"no {'images' if spec.modality == 'image' else 'texts'} to measure")
    if spec.modality == "image":
        return _confidence_finding(spec, backbone, spread(items, SAMPLE_SIZE), transform)
    if isinstance(backbone, Vocabulary):
        return _coverage_finding(spec, backbone, items)
    return _not_measured(f"{spec.name} offers no word list to hold the texts against")


def relative_confidence(mean: float, classes: int) -> float:
    """A mean max-softmax `mean` of a `classes`-way classifier on a log scale: 0 at chance, 1 when certain."""
    return math.log(classes * mean) / math.log(classes)


def mean_max_softmax(backbone: Any, images: Sequence[Image], transform: Any) -> tuple[float, int]:
    """The mean over `images` of the classifier's highest softmax probability, and the classifier's width."""
    import torch

    training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            logits = backbone(torch.stack([transform(image) for image in images]))
    finally:
        backbone.train(training)
    probabilities = torch.softmax(logits.float(), dim=1)
    return float(probabilities.max(dim=1).values.mean()), int(logits.shape[1])


def noise_images(spec: ImageInput, seed: int = 0) -> list[Image]:
    """Eight pictures no classifier was trained on, in the model's input size: uniform and Gaussian pixel
    noise, smooth random blobs and flat colours, two of each."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    size, shape = (spec.width, spec.height), (spec.height, spec.width, 3)
    images = []
    for _ in range(2):
        images.append(Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)))
        images.append(Image.fromarray(np.clip(rng.normal(128, 64, shape), 0, 255).astype(np.uint8)))
        blobs = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        images.append(blobs.resize(size, Image.Resampling.BILINEAR))
        images.append(Image.new("RGB", size, tuple(int(value) for value in rng.integers(0, 256, 3))))
    return images


def _confidence_finding(spec: ModelSpec, backbone: Any, items: list[str], transform: Any) -> Finding:
    from zoo_core.images import decode

    assert isinstance(spec.input, ImageInput)
    classes = spec.output.num_classes or 0
    if backbone.dropped_classifier:
        return _not_measured(f"{spec.name}'s classifier was not in its checkpoint (dropped at load): nothing to ask")
    mean, width = mean_max_softmax(backbone, [decode(Path(item)) for item in items], transform)
    if width != classes:
        return _not_measured(f"{spec.name} gives {width} outputs, not the {classes} classes of its entry")
    # the figures are rounded as they are printed, so that the printed figure is the one that decides
    noise = round(relative_confidence(mean_max_softmax(backbone, noise_images(spec.input), transform)[0], classes), 2)
    if noise >= CONFIDENCE_NEAR:
        return _not_measured(
            f"{spec.name}'s {classes}-class classifier is as sure of random noise (relative confidence {noise:.2f}) "
            f"as of data near its source ({CONFIDENCE_NEAR} or more), so its confidence cannot tell near from far"
        )
    near = round(relative_confidence(mean, classes), 2)
    figure = (
        f"its own {classes}-class classifier is {mean:.1%} sure of its top class on average over {len(items)} "
        f"images (chance {1 / classes:.1%}): relative confidence {near:.2f}"
    )
    if near >= CONFIDENCE_NEAR:
        return Finding("domain", "ok", f"{figure}, {CONFIDENCE_NEAR} or more: near its source data")
    stages = len(backbone.layer_groups()) - 1  # the head is the last group
    return Finding(
        "domain",
        "warn",
        f"{figure}, under {CONFIDENCE_NEAR}: far from its source data",
        "its frozen features may transfer poorly: fine-tune more layers (`zoo finetune "
        f"{spec.name} DATA --strategy finetune --unfreeze N`, N up to {stages}, or `--strategy full`), or pick a "
        "model pretrained on data closer to yours",
    )


def _coverage_finding(spec: ModelSpec, vocabulary: Vocabulary, texts: Sequence[str]) -> Finding:
    tokens, unknown = vocabulary.unknown_words(texts)
    if not tokens:
        return _not_measured("the texts hold no words")
    coverage = token_coverage(tokens, unknown)
    figure = f"{coverage:.1%} of the {len(tokens)} tokens of {len(texts)} texts are in its vocabulary"
    if coverage >= COVERAGE_NEAR:
        return Finding("domain", "ok", f"{figure}, {COVERAGE_NEAR:.0%} or more: near the text it was trained on")
    missing = ", ".join(word for word, _ in unknown.most_common(3)) + (", …" if len(unknown) > 3 else "")
    return Finding(
        "domain",
        "warn",
        f"{figure}, under {COVERAGE_NEAR:.0%} (unknown: {missing}): far from the text it was trained on",
        "unknown words get zero vectors, and word vectors are only used frozen (--strategy features): pick vectors "
        "trained on text like yours, or a sentence encoder whose subword tokenizer reads any word (all-MiniLM-L6-v2)",
    )


def _target_items(spec: ModelSpec, data: object, count: int = SAMPLE_SIZE) -> list[str] | str:
    """The target's images (a sample of `count`, readable ones) or texts, as `source_similarity` takes them;
    or why there are none to measure."""
    from zoo_core.textdata import as_text_data

    if spec.modality != "image":
        return [text for text in as_text_data(data).texts if text.strip()]
    if not isinstance(data, str | Path):
        return "an in-memory batch is not sampled; check a folder or a file of images"
    from zoo_core.image_check import labelled_files
    from zoo_core.images import read_headers

    picked = spread([str(path) for path, _ in labelled_files(Path(data))], count)
    readable, _ = read_headers([Path(item) for item in picked])
    return [str(path) for path in readable]


def data_similarity(spec: ModelSpec, data: object, report: CheckReport) -> Finding:
    """The domain finding `zoo check` adds to `report` (the findings so far for `data`, a path or texts):
    measured only when the data is usable and the weights are on disk already (`weights_on_disk`), loaded
    offline, so nothing is downloaded.

    The measurement is advice: a model that cannot be loaded or run is a warning naming why, never an error.
    """
    from zoo_core.download import weights_on_disk

    why = _unmeasurable(spec)
    if why is not None:
        return _not_measured(why)
    if not report.usable:
        return _not_measured("the data is not usable as it is; fix the errors first")
    if not weights_on_disk(spec):
        return _not_measured(f"weights not downloaded; `zoo download {spec.name}` and check again")
    items = _target_items(spec, data)
    if isinstance(items, str):
        return _not_measured(items)
    from zoo_core.loading import load
    from zoo_core.weights import ClassifierDroppedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ClassifierDroppedWarning)  # the finding says so when it matters
            backbone = load(spec, offline=True)
        return source_similarity(spec, backbone, items, report.transform)
    except Exception as error:  # advice only: whatever stops the model loading or running must not fail the check
        reason = (str(error).strip().splitlines() or [""])[0] or type(error).__name__
        return Finding(
            "domain",
            "warn",
            f"{NOT_MEASURED}{spec.name} could not be loaded and run: {reason}",
            f"fix that to measure it, or skip the measurement: zoo check {spec.name} DATA --no-domain",
        )


def run_confidence(saved: SavedRun, items: Sequence[str]) -> float:
    """The relative confidence of a run's own classifier on `items` (image paths or texts)."""
    from zoo_core.training.data import Dataset
    from zoo_core.training.evaluate import predict_scores

    unlabelled = Dataset(saved.kind, list(items), [0] * len(items), saved.classes)
    scores = predict_scores(saved.model, unlabelled, saved.transform, saved.options["batch_size"])
    return relative_confidence(float(scores.max(axis=1).mean()), len(saved.classes))


def confidence_change(saved: SavedRun, items: Sequence[str]) -> tuple[float, float, float]:
    """(the run's relative confidence on its test split, on `items`, the change from one to the other), each
    on a sample of `SHIFT_SAMPLE` and rounded as printed, so that the printed change is the one that decides."""
    assert saved.splits is not None
    own = round(run_confidence(saved, spread(saved.splits.test.items, SHIFT_SAMPLE)), 2)
    measured = round(run_confidence(saved, spread(items, SHIFT_SAMPLE)), 2)
    return own, measured, round(measured - own, 2)


def _adaptable(saved: SavedRun, data: object) -> bool:
    """Whether `zoo adapt` takes `data` as a target for the run: a folder of images, or a file of texts."""
    if not isinstance(data, str | Path):
        return False
    return Path(data).is_dir() if saved.kind == "image" else Path(data).is_file()


def run_shift(saved: SavedRun, data: object, report: CheckReport) -> Finding:
    """The "shift" finding of `zoo check RUN_FOLDER DATA`: how much the run's own classifier's confidence on
    `data` differs from that on its test split (relative confidence, as `relative_confidence`). Less sure, or
    surer, by `SHIFT_CHANGE` or more is a warning, suggesting `zoo adapt` when it takes `data`: a shifted input
    can also push every answer onto a few classes, confidently (blurred digits do). Advice only: whatever
    stops the measurement (a zoo error, a file gone) is a warning naming why, never an error."""

    def not_measured(why: str) -> Finding:
        return Finding("shift", "ok", NOT_MEASURED + why)

    if saved.tasks:
        return not_measured(
            f"{saved.folder} is a multi-task run ({', '.join(saved.tasks)}); the shift is measured for single-task "
            "runs only"
        )
    if not report.usable:
        return not_measured("the data is not usable as it is; fix the errors first")
    if saved.splits is None:
        return not_measured(f"{saved.folder} keeps no splits.json (an older zoo wrote it): no test split")
    items = _target_items(saved.spec, data, SHIFT_SAMPLE)
    if isinstance(items, str):
        return not_measured(items)
    if len(items) < SHIFT_MINIMUM:
        return not_measured(f"{len(items)} items, at least {SHIFT_MINIMUM} needed")
    try:
        own, measured, change = confidence_change(saved, items)
    except (ZooError, OSError) as error:  # advice only: an image of the test split gone or unreadable
        reason = (str(error).strip().splitlines() or [""])[0] or type(error).__name__
        return Finding("shift", "warn", f"{NOT_MEASURED}the run's model could not be run: {reason}")
    figure = (
        f"the run's own {len(saved.classes)}-class classifier: relative confidence {measured:.2f} on "
        f"{min(len(items), SHIFT_SAMPLE)} items of the data against {own:.2f} on its test split, a change "
        f"of {change:+.2f}"
    )
    if abs(change) < SHIFT_CHANGE:
        return Finding("shift", "ok", f"{figure}, under ±{SHIFT_CHANGE}: like the data it was trained for")
    # a features run trained no normalisation layer, so only pseudo applies to it
    methods = "--method pseudo" if saved.options["strategy"] == "features" else "--method adabn (or tent, pseudo)"
    fix = (
        f"adapt the run to it without labels: zoo adapt {saved.folder} {data} --out ADAPTED {methods}; see "
        "docs/adapt.md"
        if _adaptable(saved, data)
        else f"gather such data in a {'folder' if saved.kind == 'image' else 'text file'} to adapt the run to it "
        "(zoo adapt; see docs/adapt.md)"
    )
    return Finding(
        "shift",
        "warn",
        f"{figure}, ±{SHIFT_CHANGE} or more: shifted from the data it was trained for, its accuracy may fall",
        fix,
    )
