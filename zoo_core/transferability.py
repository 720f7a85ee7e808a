"""Transferability scores: how well a backbone's frozen features suit a labelled dataset, before any training.

Each score takes the features (one row per item) and the labels of the same items and returns one number;
for every score, higher means the features suit the labels better. They answer `zoo rank`'s question
"which backbone will do best on my data?" from features alone, without training any candidate.

- ``logme``: LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
  ICML 2021), the log evidence of a Bayesian linear model from the features to each class's one-hot column.
- ``hscore``: H-score (Bao et al., "An Information-Theoretic Approach to Transferability in Task Transfer
  Learning", ICIP 2019) with the Ledoit-Wolf shrunk feature covariance of Ibrahim et al. ("Newer is not
  always better: Rethinking transferability metrics", 2022), so that it is defined with fewer items than
  dimensions.
- ``linear``: the cross-validated accuracy of a logistic regression on the standardised features.

Every score is invariant to the features' overall scale (multiplying all features by one number changes no
score), so features are divided by their largest magnitude first: squares and Gram matrices of features of
any scale stay finite. Failures raise `DataError` (a `ValueError`) with a one-line message: features that
are not a 2-D array of finite numbers, labels that are not one per row, fewer than 2 classes, and, for
``linear`` alone, a class with a single item (cross-validation needs two). Constant or all-zero features
are not a failure: they score low and finite. numpy is the only import at module level; scikit-learn is
imported by the two scores that use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from zoo_core.errors import DataError

__all__ = ["SCORES", "Evidence", "Score", "class_evidence", "hscore", "linear_probe", "logme"]

# LogME's fixed-point iteration stops for a class when alpha/beta moves by less than this fraction, usually
# within 50 steps; a step costs O(rank) per class still moving, so a tight tolerance is cheap. Where the
# evidence is nearly flat (features almost blind to a class) alpha/beta creeps on for the whole _MAX_STEPS:
# on 200 random data sets the evidence then stopped within 5e-6 per item of a bounded 1-D search's maximum.
_TOLERANCE = 1e-10
_MAX_STEPS = 1000
# alpha/beta is kept within these multiples of the largest eigenvalue of F^T F: at the upper end the weights
# are all but zero (the evidence is that of noise alone, to 1e-12), at the lower end the noise is. The lower
# bound also caps the one unbounded case, labels that n > D features fit exactly (duplicated rows, a label
# column among the features): the evidence then grows without end as the noise vanishes.
_RATIO_BOUNDS = (1e-12, 1e12)


class _Items(NamedTuple):
    """Features and labels after the checks every score needs."""

    features: np.ndarray  # float64, divided by `scale`
    classes: np.ndarray  # each item's class index, 0 .. len(names) - 1
    names: np.ndarray  # the distinct labels, sorted; index i is class i
    scale: float  # the largest magnitude of the features as given (0 when they are all zero)


def _prepared(features: np.ndarray, labels: np.ndarray) -> _Items:
    """Check `features` and `labels`, and return the features as float64 divided by their largest magnitude."""
    values = np.array(features, dtype=np.float64)
    given = np.asarray(labels)
    if values.ndim != 2 or 0 in values.shape:
        raise DataError(f"features: need one row per item (items x dimensions), got shape {values.shape}")
    if given.shape != (len(values),):
        raise DataError(f"labels: need one label per row of features ({len(values)}), got shape {given.shape}")
    broken = int(np.count_nonzero(~np.isfinite(values)))
    if broken:
        raise DataError(f"features: {broken} values are NaN or infinite; check the backbone's output on this data")
    names, classes = np.unique(given, return_inverse=True)
    if len(names) < 2:
        raise DataError(
            f"labels: every item is of class {names.tolist()[0]!r}; a transferability score needs 2 classes"
        )
    scale = float(np.abs(values).max())
    if scale > 0:
        values /= scale
    return _Items(values, classes.reshape(-1), names, scale)


def _eigen(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eigenvalues of a symmetric positive semi-definite matrix that are not rounding noise, with their
    eigenvectors (columns). Below max x size x machine epsilon an eigenvalue cannot be told from zero."""
    values, vectors = np.linalg.eigh(gram)
    floor = max(float(values[-1]), 0.0) * len(values) * np.finfo(np.float64).eps
    kept = values > floor if floor > 0 else np.zeros(len(values), dtype=bool)
    return values[kept], vectors[:, kept]


# --- LogME --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """One class's Bayesian linear model ``y = F w + noise`` at its maximum evidence.

    The prior is ``w ~ N(0, I / alpha)`` and the noise ``N(0, I / beta)``; `y` is the class's one-hot column
    of the labels and `F` the features as given (not divided by their scale).
    """

    alpha: float  # precision of the prior on the weights
    beta: float  # precision of the noise
    log_evidence: float  # log p(y | F, alpha, beta) = log N(y | 0, I / beta + F F^T / alpha), all n items


def _spectrum(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-zero eigenvalues s_i of F^T F, the projections x = U^T Y of the targets on the matching left
    singular vectors of F, and each target's squared distance to the span of F.

    From the Gram matrix of the smaller side (n x n or D x D), so that a score costs one eigen-decomposition
    and each LogME iteration O(rank x classes). With n <= D the distance is measured on the residual itself:
    as ||y||^2 - ||x||^2 it would be rounding noise of 1e-14 where it is truly 0, and LogME's noise precision
    would settle on that noise.
    """
    items, dimensions = features.shape
    if items <= dimensions:
        values, left = _eigen(features @ features.T)
        projections = left.T @ targets
        return values, projections, ((targets - left @ projections) ** 2).sum(axis=0)
    values, right = _eigen(features.T @ features)
    projections = (right.T @ (features.T @ targets)) / np.sqrt(values)[:, None]
    return values, projections, np.maximum((targets**2).sum(axis=0) - (projections**2).sum(axis=0), 0.0)


def _fit_terms(ratio: np.ndarray, values: np.ndarray, squares: np.ndarray, items: int) -> tuple[np.ndarray, ...]:
    """For alpha/beta = `ratio` (one per class): gamma, the effective number of weights, and n - gamma;
    ||m||^2 of the posterior mean m; and the part of ||y - F m||^2 inside the features' span. Each share is
    computed directly, not as 1 minus the other, so that nothing cancels when alpha/beta is tiny or huge."""
    kept, dropped = values[:, None] / (values[:, None] + ratio), ratio / (values[:, None] + ratio)
    gamma, freedom = kept.sum(axis=0), (items - len(values)) + dropped.sum(axis=0)
    weights = (kept**2 * squares / values[:, None]).sum(axis=0)
    residual = (dropped**2 * squares).sum(axis=0)
    return gamma, freedom, weights, residual


def _maximised(values: np.ndarray, squares: np.ndarray, outside: np.ndarray, items: int) -> tuple[np.ndarray, ...]:
    """alpha and beta of each class (columns of `squares`) at the maximum of the evidence, by the paper's
    fixed-point iteration: gamma = sum s / (s + alpha/beta), alpha = gamma / ||m||^2,
    beta = (n - gamma) / ||y - F m||^2. `outside` is the part of ||y||^2 that the features cannot reach.

    The maximum can lie at an edge, where alpha/beta is kept within _RATIO_BOUNDS by moving the parameter
    that the data does not determine there: features blind to the class (||m|| = 0) have alpha at the
    upper bound and beta that of noise alone; labels that the features fit exactly (n <= D, the noise
    precision beta growing without end) keep the alpha of the noise-free fit and have beta at the bound.
    """
    top = float(values.max()) if len(values) else 1.0
    low, high = _RATIO_BOUNDS[0] * top, _RATIO_BOUNDS[1] * top
    alpha, beta = np.ones(squares.shape[1]), np.ones(squares.shape[1])
    moving = np.arange(squares.shape[1])  # the classes not settled yet: only they cost a step
    for _ in range(_MAX_STEPS):
        ratio = alpha[moving] / beta[moving]
        gamma, freedom, weights, residual = _fit_terms(ratio, values, squares[:, moving], items)
        with np.errstate(divide="ignore", invalid="ignore"):
            new_alpha, new_beta = np.nan_to_num(gamma / weights, nan=np.inf), freedom / (residual + outside[moving])
        new_alpha = np.minimum(new_alpha, high * new_beta)
        new_beta = np.minimum(new_beta, new_alpha / low)
        alpha[moving], beta[moving] = new_alpha, new_beta
        moving = moving[np.abs(new_alpha / new_beta - ratio) > _TOLERANCE * ratio]
        if len(moving) == 0:
            break
    return alpha, beta


def _log_evidence(
    alpha: np.ndarray, beta: np.ndarray, values: np.ndarray, squares: np.ndarray, outside: np.ndarray, items: int
) -> np.ndarray:
    """log p(y | alpha, beta) per class, through the spectrum: D/2 log alpha - 1/2 log|alpha I + beta F^T F|
    is written as -1/2 sum log(1 + beta s / alpha), exact whether n < D or n > D and whatever the rank."""
    _, _, weights, residual = _fit_terms(alpha / beta, values, squares, items)
    penalty = np.log1p(values[:, None] * (beta / alpha)).sum(axis=0)
    misfit = beta * (residual + outside) + alpha * weights
    evidence: np.ndarray = items / 2 * np.log(beta) - penalty / 2 - misfit / 2 - items / 2 * math.log(2 * math.pi)
    return evidence


def class_evidence(features: np.ndarray, labels: np.ndarray) -> list[Evidence]:
    """Each class's (in sorted label order) Bayesian linear model from `features` to its one-hot column, at
    the alpha and beta that maximise the evidence; what LogME averages."""
    items = _prepared(features, labels)
    count = len(items.features)
    targets = np.eye(len(items.names))[items.classes]
    values, projections, outside = _spectrum(items.features, targets)
    squares = projections**2
    alpha, beta = _maximised(values, squares, outside, count)
    evidence = _log_evidence(alpha, beta, values, squares, outside, count)
    with np.errstate(over="ignore"):  # alpha for the features as given: infinite beyond about 1e150
        alpha = alpha * items.scale * items.scale if items.scale > 0 else alpha
    return [Evidence(float(a), float(b), float(e)) for a, b, e in zip(alpha, beta, evidence, strict=True)]


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME: the mean over classes of the maximised log evidence of a Bayesian linear model from the
    features to the class's one-hot column, divided by the number of items (You et al., ICML 2021).

    The features are used as given, neither centred nor standardised, as in the paper and its reference
    code, so the numbers compare with published LogME values. (With fewer items than dimensions the
    reference code's default sums log(alpha + beta sigma) over the n nonzero eigenvalues only, leaving out
    the (D - n) log alpha of the zero ones, thuml/LogME issue 23; this is the evidence itself, as its
    `_fit_icml` computes it.) The model has no intercept: a feature that is
    nearly constant, as pooled ReLU features are, plays that part. Standardising would change the prior's
    shape (each feature scaled by its own number); the overall scale changes nothing, because alpha absorbs
    it. All-zero features explain nothing: each class of frequency p gets the evidence of noise alone,
    -log(2 pi e p) / 2 per item (-1.07 for two balanced classes), low but finite.
    """
    evidence = class_evidence(features, labels)
    return float(np.mean([each.log_evidence for each in evidence])) / len(features)


# --- H-score and the linear probe ---------------------------------------------------------------------------


def hscore(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score with shrinkage: tr(cov_a(f)^-1 (1 - a) cov(E[f | y])), where cov_a is the Ledoit-Wolf estimate
    of the features' covariance and a its shrinkage (Ibrahim et al. 2022; the plain H-score of Bao et al.
    2019 inverts the sample covariance, which is singular when there are fewer items than dimensions).

    Between-class variance over total variance, summed over directions: larger when the class means lie far
    apart compared with the spread of the features. Both covariances are the maximum-likelihood ones
    (divided by n); constant features score 0.
    """
    from sklearn.covariance import ledoit_wolf_shrinkage

    items = _prepared(features, labels)
    centred = items.features - items.features.mean(axis=0)
    shrinkage = float(ledoit_wolf_shrinkage(centred, assume_centered=True))
    targets = np.eye(len(items.names))[items.classes]
    # With centred F = U S V^T: cov(f) = V S^2 V^T / n, its Ledoit-Wolf estimate ((1 - a) S^2 + a mu I) / n
    # with mu = ||F||^2 / D, and class k's mean along v_i is s_i x_ik / n_k where x = U^T Y, so the trace is
    # a sum over the spectrum: no D x D matrix is formed or inverted.
    values, projections, _ = _spectrum(centred, targets)
    spread = (1 - shrinkage) * values + shrinkage * float((centred**2).sum()) / centred.shape[1]
    between = values[:, None] * projections**2 / targets.sum(axis=0)
    return float((1 - shrinkage) * np.sum(between / spread[:, None]))


def linear_probe(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """The mean accuracy of a logistic regression (scikit-learn's defaults, L2 with C=1) on standardised
    features over stratified k-fold cross-validation, k = min(5, the smallest class's count).

    The scaler is fitted on each fold's training part only, so no fold sees its test items. `seed` shuffles
    the folds. Refuses (DataError) data where a class has a single item: no fold could hold it out.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    items = _prepared(features, labels)
    counts = np.bincount(items.classes)
    smallest = int(counts.argmin())
    if counts[smallest] < 2:
        raise DataError(
            f"labels: class {items.names.tolist()[smallest]!r} has {counts[smallest]} item; the linear probe's "
            "cross-validation needs at least 2 per class (give that class more items)"
        )
    folds = StratifiedKFold(n_splits=min(5, int(counts[smallest])), shuffle=True, random_state=seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(np.mean(cross_val_score(probe, items.features, items.classes, cv=folds)))


Score = Callable[[np.ndarray, np.ndarray], float]  # (features, labels) -> score, higher is better

# `zoo rank --score NAME`; docs/rank.md says what each number means
SCORES: dict[str, Score] = {"logme": logme, "hscore": hscore, "linear": linear_probe}
