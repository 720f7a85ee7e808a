"""Transferability scores against direct evaluations of their formulas, on small random data.

LogME is checked against log N(y | 0, I / beta + F F^T / alpha) computed with slogdet, and H-score against
scikit-learn's Ledoit-Wolf covariance and a pseudo-inverse, neither of which the module uses.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from zoo_core.errors import DataError
from zoo_core.transferability import SCORES, class_evidence, hscore, linear_probe, logme

pytest.importorskip("sklearn", reason="the train extra installs scikit-learn")


def direct_evidence(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    """log N(target | 0, I / beta + F F^T / alpha): the evidence of the Bayesian linear model, as one Gaussian."""
    covariance = np.eye(len(target)) / beta + features @ features.T / alpha
    _, log_det = np.linalg.slogdet(covariance)
    quadratic = target @ np.linalg.solve(covariance, target)
    return -0.5 * (len(target) * math.log(2 * math.pi) + log_det + quadratic)


def clustered(items: int, dimensions: int, seed: int, spread: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Three balanced classes whose features are a class mean (scaled by `spread`) plus unit noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(items) % 3
    return rng.normal(size=(items, dimensions)) + spread * rng.normal(size=(3, dimensions))[labels], labels


@pytest.mark.parametrize(("items", "dimensions", "seed"), [(36, 12, 0), (12, 36, 3)], ids=["n>D", "n<D"])
def test_logme_is_the_direct_evidence_at_its_maximum(items: int, dimensions: int, seed: int) -> None:
    features, labels = clustered(items, dimensions, seed)
    evidence = class_evidence(features, labels)
    interior = 0
    for k, found in enumerate(evidence):
        target = (labels == k).astype(np.float64)
        at_maximum = direct_evidence(features, target, found.alpha, found.beta)
        assert found.log_evidence == pytest.approx(at_maximum, rel=1e-10, abs=1e-9)
        if 1e-6 < found.alpha / found.beta < 1e6:  # the maximum lies inside: moving either parameter costs
            interior += 1
            for alpha, beta in [(1.05, 1), (1 / 1.05, 1), (1, 1.05), (1, 1 / 1.05)]:
                moved = direct_evidence(features, target, found.alpha * alpha, found.beta * beta)
                assert moved < at_maximum - 1e-5, (k, alpha, beta, moved, at_maximum)
    assert interior >= 2  # the data were chosen so; the edge is tested below
    assert logme(features, labels) == pytest.approx(np.mean([e.log_evidence for e in evidence]) / items, rel=1e-12)


def test_logme_reaches_the_noise_free_edge_when_the_features_fit_the_labels_exactly() -> None:
    """With n < D every target lies in the features' span; for classes 0 and 2 here the evidence grows as the
    noise vanishes, up to that of the noise-free model, max over alpha of log N(y | 0, F F^T / alpha)."""
    features, labels = clustered(12, 36, seed=0)
    evidence, gram = class_evidence(features, labels), features @ features.T
    for k in (0, 2):
        target = (labels == k).astype(np.float64)
        best_alpha = len(target) / (target @ np.linalg.solve(gram, target))
        noise_free = -0.5 * (
            len(target) * math.log(2 * math.pi) + np.linalg.slogdet(gram)[1] - len(target) * math.log(best_alpha) + 12
        )
        assert evidence[k].beta / evidence[k].alpha > 1e6  # next to no noise
        assert evidence[k].alpha == pytest.approx(best_alpha, rel=1e-9)
        assert evidence[k].log_evidence == pytest.approx(noise_free, rel=1e-10)


def test_features_blind_to_a_class_give_the_evidence_of_noise_alone() -> None:
    """All-zero features: the evidence of y under noise alone, -log(2 pi e p) / 2 per item for a class of
    frequency p, whatever the dimension; a constant feature adds an intercept and scores a little higher."""
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    shares = np.bincount(labels) / len(labels)
    noise_alone = float(np.mean(-np.log(2 * math.pi * math.e * shares) / 2))
    for dimensions in (3, 40):
        zeros = np.zeros((len(labels), dimensions))
        assert logme(zeros, labels) == pytest.approx(noise_alone, rel=1e-12)
        assert hscore(zeros, labels) == 0.0
        constant = np.full((len(labels), dimensions), 7.0, dtype=np.float32)
        assert noise_alone < logme(constant, labels) < -0.5
        assert hscore(constant, labels) == 0.0


def test_hscore_is_the_direct_formula_with_ledoit_wolf_shrinkage() -> None:
    from sklearn.covariance import LedoitWolf

    for items, dimensions in [(60, 8), (15, 40)]:
        features, labels = clustered(items, dimensions, seed=items)
        estimate = LedoitWolf().fit(features)
        means = np.stack([features[labels == k].mean(axis=0) for k in range(3)])
        between = np.cov(means[labels], rowvar=False, bias=True)  # cov(E[f | y]), maximum likelihood
        expected = np.trace(np.linalg.pinv(estimate.covariance_) @ ((1 - estimate.shrinkage_) * between))
        assert 0 < estimate.shrinkage_ < 1
        assert hscore(features, labels) == pytest.approx(expected, rel=1e-9)


def test_every_score_ranks_separating_features_above_noise() -> None:
    rng = np.random.default_rng(11)
    labels = np.repeat(np.arange(4), 15)
    separating = rng.normal(size=(60, 20)) + 1.5 * rng.normal(size=(4, 20))[labels]
    noise = rng.normal(size=(60, 20))
    for name, score in SCORES.items():
        good, bad = score(separating, labels), score(noise, labels)
        assert good > bad, (name, good, bad)
    assert linear_probe(separating, labels) >= 0.95 and linear_probe(noise, labels) < 0.5


def test_scores_agree_on_float32_and_ignore_the_overall_scale() -> None:
    features, labels = clustered(30, 50, seed=5)
    for name, score in SCORES.items():
        reference = score(features, labels)
        assert math.isfinite(reference), name
        assert score(features.astype(np.float32), labels) == pytest.approx(reference, rel=1e-4), name
        for scale in (1e-30, 1e30, 1e200):
            assert score(features * scale, labels) == pytest.approx(reference, rel=1e-6), (name, scale)


def test_linear_probe_standardises_each_feature() -> None:
    """The one informative feature is a million times smaller than the noise: without standardising,
    C=1's penalty would keep its weight near zero."""
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], 20)
    features = np.column_stack([1e-6 * (labels + 0.1 * rng.normal(size=40)), rng.normal(size=(40, 3))])
    assert linear_probe(features, labels) == 1.0
    assert linear_probe(features, labels, seed=1) == 1.0


def test_linear_probe_folds_follow_the_smallest_class() -> None:
    rng = np.random.default_rng(4)
    labels = np.array([0] * 2 + [1] * 10)
    features = rng.normal(size=(12, 3)) + 3 * labels[:, None]
    assert linear_probe(features, labels) == 1.0  # two folds: each holds one item of class 0
    with pytest.raises(DataError, match=r"^labels: class 'b' has 1 item; the linear probe's cross-validation"):
        linear_probe(features[1:], np.array(["b"] + ["c"] * 10))


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.zeros(5), np.zeros(5), r"^features: need one row per item \(items x dimensions\), got shape \(5,\)$"),
        (np.zeros((4, 2)), np.array([0, 1, 0]), r"^labels: need one label per row of features \(4\), got shape \(3,\)"),
        (np.array([[0.0, np.nan], [1.0, np.inf]]), np.array([0, 1]), r"^features: 2 values are NaN or infinite"),
        (np.ones((3, 2)), np.array([4, 4, 4]), r"^labels: every item is of class 4; a transferability score needs 2"),
    ],
)
def test_unusable_input_is_refused_in_one_line(features: np.ndarray, labels: np.ndarray, message: str) -> None:
    for score in SCORES.values():
        with pytest.raises(DataError, match=message) as refused:
            score(features, labels)
        assert "\n" not in str(refused.value) and isinstance(refused.value, ValueError)


def test_scores_are_listed_in_order_with_one_line_each() -> None:
    assert list(SCORES) == ["logme", "hscore", "linear"]
    assert list(SCORES.values()) == [logme, hscore, linear_probe]


def test_importing_the_scores_loads_numpy_alone() -> None:
    probe = "import sys, zoo_core.transferability; print(sorted({'sklearn', 'torch', 'scipy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
