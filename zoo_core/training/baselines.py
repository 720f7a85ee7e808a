"""Baselines a transfer run is compared with: pixels or words under a logistic regression, k-NN on frozen
features, and BatchNorm statistics re-estimated so a network trained from scratch can be evaluated fairly.

Each answers "would something simpler do as well?": transfer is only worth its weights when it beats
them on the same split. The classifiers return class probabilities, one row per evaluated item, one
column per class of the training set, so they are scored exactly like the transfer model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo_core.errors import DataError
from zoo_core.images import decode, eight_bit, read_header
from zoo_core.training.data import Dataset
from zoo_core.training.device import autocast, module_device, to_device

__all__ = ["knn_baseline", "pixel_baseline", "recompute_batchnorm"]

PIXEL_SIDE = 16  # 256 grey or 768 colour features: on digits, as good as or better than the native 8x8 and 32x32
MAX_NEIGHBOURS = 5
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _pixels(dataset: Dataset, mode: str) -> np.ndarray:
    """Each image decoded, in `mode` ("L" or "RGB"), stretched to PIXEL_SIDE square, scaled to [0, 1]."""
    from PIL import Image

    rows = []
    for item in dataset.items:
        image = eight_bit(decode(Path(item))).convert(mode)
        small = image.resize((PIXEL_SIDE, PIXEL_SIDE), Image.Resampling.BILINEAR)  # Pillow antialiases shrinking
        rows.append(np.asarray(small, dtype=np.float64).reshape(-1) / 255)
    return np.stack(rows)


def _colour_mode(dataset: Dataset) -> str:
    """Grey ("L") when every training image is grey, as colour would add nothing; otherwise "RGB" for all.
    Headers only; a file that cannot be read is named by `decode` when its pixels are needed."""
    headers = (read_header(Path(item)) for item in dataset.items)
    return "L" if all(isinstance(header, str) or header.mode in GREY_MODES for header in headers) else "RGB"


def _words(train: Dataset, evaluate_on: list[Dataset]) -> tuple[Any, list[Any]]:
    """TF-IDF of words and word pairs, the vocabulary learnt from the training texts only."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    # one-letter words count too ("a", "i", digits); sublinear counts keep a repeated word from dominating
    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    try:
        train_x = vectoriser.fit_transform(train.items)
    except ValueError:  # scikit-learn's "empty vocabulary"
        raise DataError(
            "the bag-of-words baseline found no words in the training texts (only punctuation or blanks); "
            "check the text column of the training data"
        ) from None
    return train_x, [vectoriser.transform(dataset.items) for dataset in evaluate_on]


def _class_columns(probabilities: np.ndarray, fitted: np.ndarray, classes: int) -> np.ndarray:
    """Probabilities with one column per class index, 0 for a class the fit never saw."""
    full = np.zeros((probabilities.shape[0], classes), dtype=np.float64)
    full[:, fitted] = probabilities
    return full


def pixel_baseline(train: Dataset, evaluate_on: list[Dataset]) -> list[np.ndarray]:
    """Class probabilities of a logistic regression on raw inputs, one array per dataset of `evaluate_on`.

    Images: decoded, grey when the whole training set is grey and RGB otherwise, shrunk to 16x16 and scaled
    to [0, 1]; the same for any backbone, so the figure belongs to the data. Pixels are not standardised:
    a border pixel that is nearly always blank would be blown up into noise (on digits 5-9 with 10 images
    a class, standardising costs 1 to 4 points). Texts: TF-IDF of words and word pairs. scikit-learn's
    defaults (L2, C=1, lbfgs, deterministic), tuned on no split of the user's data; the 16x16 size and the
    plain scaling were chosen once, by measuring on digits 5-9 (the benchmark's own data), and are said so.
    """
    from sklearn.linear_model import LogisticRegression

    if train.kind == "image":
        mode = _colour_mode(train)
        train_x: Any = _pixels(train, mode)
        evaluated: list[Any] = [_pixels(dataset, mode) for dataset in evaluate_on]
    else:
        train_x, evaluated = _words(train, evaluate_on)
    fitted = LogisticRegression(max_iter=5000).fit(train_x, train.labels)
    classes = len(train.classes)
    return [_class_columns(fitted.predict_proba(x), fitted.classes_, classes) for x in evaluated]


def _unit_rows(features: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero), so that a dot product is the cosine."""
    rows = np.asarray(features, dtype=np.float64)
    unit: np.ndarray = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return unit


def knn_baseline(
    train_features: np.ndarray,
    train_labels: list[int],
    evaluate_features: list[np.ndarray],
    classes: int,
    k: int | None = None,
) -> list[np.ndarray]:
    """Vote shares of the `k` nearest training items by cosine similarity, one array per features array.

    `k` defaults to min(5, the smallest class's count): never more neighbours than the rarest class has
    items, so with few shots a class can win a vote, and not tuned on any split. Rows sum to 1; a tie in
    the vote stays a tie (argmax then takes the lower class index).
    """
    labels = np.asarray(train_labels)
    smallest = int(np.bincount(labels, minlength=classes)[np.unique(labels)].min())
    k = min(k or min(MAX_NEIGHBOURS, smallest), len(labels))
    train_unit = _unit_rows(train_features)
    shares = []
    for features in evaluate_features:
        similarity = _unit_rows(features) @ train_unit.T
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        votes = np.zeros((len(similarity), classes))
        np.add.at(votes, (np.arange(len(similarity))[:, None], labels[nearest]), 1.0)
        shares.append(votes / k)
    return shares


def recompute_batchnorm(module: nn.Module, batches: Iterable[tuple[Any, Any]], *, precision: str = "fp32") -> None:
    """Set the running mean and variance of every BatchNorm that trains to their average over `batches` (the
    training set); those a frozen layer group keeps in eval mode keep their pretrained statistics.

    A network trained on a few dozen images takes ~4 steps an epoch: its running statistics, moved 10% a
    step, trail weights that change fast, and in eval mode it sits near chance (the scratch baseline's 20%
    on digits 5-9, against 89% with them re-estimated). Re-estimating them, as
    torch.optim.swa_utils.update_bn does but with every other layer in eval mode (dropout stays off),
    changes no weight and no training step, only what evaluation uses.
    The module's train/eval mode and each BatchNorm's momentum are restored afterwards. A last batch of
    one item, which has no variance, is left out. The batches run where the module is, under autocast at
    `precision`, as training and evaluation run them.
    """
    was_training = module.training
    module.train()  # a frozen group's layers stay in eval mode: they are not the ones to re-estimate
    norms = [
        layer for layer in module.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.training
    ]
    if not norms:
        module.train(was_training)
        return
    momenta = [norm.momentum for norm in norms]
    module.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches instead of an exponential one
        norm.train()
    device = module_device(module)
    with torch.no_grad():
        held: Any = None  # a batch of one has no variance (BatchNorm refuses it over 1x1 maps): joins the next
        for inputs, _ in batches:
            moved = to_device(inputs, device)
            merged = moved if held is None else torch.cat([held, moved])
            held = merged if len(merged) < 2 else None
            if held is None:
                with autocast(device, precision):
                    module(merged)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    module.train(was_training)
