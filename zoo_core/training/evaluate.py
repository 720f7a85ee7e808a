"""Classification figures of a trained model on a labelled dataset: what `zoo evaluate` prints and what a
run reports as its test figure.

`classification_report` turns class probabilities into plain JSON-able figures, all computed by
scikit-learn: accuracy, balanced accuracy (the mean recall over the classes present in the data), macro-F1
(over the same classes), top-k accuracy, per-class precision, recall and F1, the confusion matrix and the
worst-classified items. `predict_scores` gives those probabilities for a torch `TransferModel`;
`evaluate_model` is the two together. The module imports neither torch nor scikit-learn until called.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from zoo_core.training.data import Dataset

__all__ = ["classification_report", "evaluate_model", "predict_scores"]


def _undefined_as_none(values: np.ndarray) -> list[float | None]:
    """NaN (scikit-learn's mark for a figure with nothing to divide by) as None, which JSON can hold."""
    return [None if np.isnan(value) else float(value) for value in values]


def classification_report(
    labels: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    items: Sequence[str],
    top_k: int = 5,
    worst: int = 10,
) -> dict[str, Any]:
    """Figures for `labels` (class indices, one per item) against `scores` (probabilities, one row per item,
    one column per class of `classes`); `items` name the rows (image paths, or the texts) in the list of
    `worst`, the items whose true class got the lowest probability.

    Precision is None for a class never predicted, recall for a class with no items: there is nothing to
    divide by, and a 0 would read as a measured failure. Top-k uses k = min(`top_k`, classes - 1): with k as
    large as the class count, every answer would count as right.
    """
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    truth = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    count = len(classes)
    if not len(truth) or scores.shape != (len(truth), count) or len(items) != len(truth):
        raise ValueError(
            f"need one score row of {count} classes and one item per label, got {len(truth)} labels, "
            f"scores of shape {scores.shape} and {len(items)} items"
        )
    if truth.min() < 0 or truth.max() >= count:
        raise ValueError(f"labels must be class indices below {count}, got {sorted(set(truth.tolist()))}")
    predicted = scores.argmax(axis=1)
    everything, present = list(range(count)), sorted(set(truth.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=everything, zero_division=np.nan
    )
    k = max(1, min(top_k, count - 1))  # k >= the class count would score 100% whatever the model does
    ranked = scores[:, 1] if count == 2 else scores  # scikit-learn takes two classes' scores as p(the second)
    rows = np.arange(len(truth))
    order = np.argsort(scores[rows, truth], kind="stable")[:worst]
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": the docstring says which count
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(truth, predicted)
    return {
        "samples": len(truth),
        "classes": list(classes),
        "accuracy": float(accuracy_score(truth, predicted)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0.0)),
        "top_k": k,
        "top_k_accuracy": float(top_k_accuracy_score(truth, ranked, k=k, labels=everything)),
        "per_class": [
            {"class": name, "precision": p, "recall": r, "f1": f, "support": int(n)}
            for name, p, r, f, n in zip(
                classes,
                _undefined_as_none(precision),
                _undefined_as_none(recall),
                _undefined_as_none(f1),
                support,
                strict=True,
            )
        ],
        "confusion": {  # rows: true class, columns: predicted class
            "classes": list(classes),
            "matrix": confusion_matrix(truth, predicted, labels=everything).tolist(),
        },
        "worst": [
            {
                "item": items[row],
                "true": classes[truth[row]],
                "predicted": classes[predicted[row]],
                "p_true": float(scores[row, truth[row]]),
                "p_predicted": float(scores[row, predicted[row]]),
            }
            for row in order.tolist()
        ],
    }


def predict_scores(
    model: Any, dataset: Dataset, transform: Any, batch_size: int, *, precision: str = "fp32", workers: int = 0
) -> np.ndarray:
    """Class probabilities (softmax of the logits) of a `TransferModel` for every item of `dataset`, rows in
    the dataset's order. The model is put in eval mode (BatchNorm's running statistics, no dropout) and
    computes its head on the backbone's features, as a features run trains it; both run on the device the
    model is on, the backbone under autocast at `precision`, fed by `workers` (`compute_features`)."""
    import torch

    from zoo_core.training.device import module_device
    from zoo_core.training.features import compute_features

    model.eval()
    features = compute_features(model.backbone, dataset, transform, batch_size, precision=precision, workers=workers)
    with torch.no_grad():
        logits = model.head(torch.from_numpy(features).to(module_device(model)))
        probabilities: np.ndarray = torch.softmax(logits.double(), dim=1).cpu().numpy()
    return probabilities


def evaluate_model(model: Any, dataset: Dataset, transform: Any, batch_size: int) -> dict[str, Any]:
    """`classification_report` of `model`'s `predict_scores` on `dataset` (its classes, items and labels)."""
    scores = predict_scores(model, dataset, transform, batch_size)
    return classification_report(dataset.labels, scores, dataset.classes, dataset.items)
