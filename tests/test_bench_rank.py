"""bench/bench_rank.py and bench/rank_targets.py: the targets' sets are disjoint and what they claim to be, the
random candidates load as registered, and tau, top-1 hit and the heuristics are computed as the benchmark says."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import zoo_core
from zoo_core.training.options import FinetuneOptions
from zoo_core.training.run import run_splits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_rank
import rank_targets


def _splits(target: rank_targets.Target, kind: str) -> tuple[list[str], list[str], list[str]]:
    """The three sets as `zoo finetune` reads them, given --val and --test: it refuses an item in two sets."""
    options = FinetuneOptions(val=str(target.val), test=str(target.test))
    splits = run_splits(target.train, kind, options, seed=0)
    return tuple(  # type: ignore[return-value]
        [dataset.classes[label] for label in dataset.labels] for dataset in splits
    )


def test_digits_have_ten_shots_and_a_thinned_test_and_their_inversion_is_the_same_images(tmp_path: Path) -> None:
    from PIL import Image

    target = rank_targets.digits(tmp_path / "plain", seed=1)
    train, val, test = _splits(target, "image")
    for labels, count in ((train, 10), (val, 10), (test, rank_targets.TEST_PER_CLASS)):
        assert sorted(set(labels)) == ["5", "6", "7", "8", "9"] and all(labels.count(c) == count for c in set(labels))
    inverted = rank_targets.inverted_digits(tmp_path / "inverted", seed=1)
    assert [len(_) for _ in _splits(inverted, "image")] == [50, 50, 5 * rank_targets.TEST_PER_CLASS]
    for split in ("train", "val", "test"):
        plain = sorted(p.relative_to(getattr(target, split)) for p in getattr(target, split).glob("*/*.png"))
        flipped = sorted(p.relative_to(getattr(inverted, split)) for p in getattr(inverted, split).glob("*/*.png"))
        assert plain == flipped
    one = plain[0]
    original = np.asarray(Image.open(target.test / one))
    assert original.shape == (rank_targets.DIGIT_SIZE, rank_targets.DIGIT_SIZE) and original.mean() < 128
    assert np.array_equal(np.asarray(Image.open(inverted.test / one)), 255 - original)


def test_texture_patches_come_from_disjoint_bands_of_each_picture(tmp_path: Path) -> None:
    rows = np.repeat(np.arange(400)[:, None], 300, axis=1)  # each pixel holds its row
    for split, (top, bottom) in rank_targets.BANDS.items():
        patches = rank_targets._patches(rows, (top, bottom))
        assert patches and all(p.shape == (rank_targets.PATCH, rank_targets.PATCH) for p in patches), split
        assert min(p.min() for p in patches) >= top * 400 and max(p.max() for p in patches) < bottom * 400, split
        assert len(patches) == (round(bottom * 400) - round(top * 400)) // 48 * (300 // 48)
    target = rank_targets.textures(tmp_path, seed=0)
    train, val, test = _splits(target, "image")  # zoo finetune accepts them: no patch in two sets
    assert sorted(set(train)) == sorted(rank_targets.TEXTURES)
    assert all(train.count(c) == 10 and val.count(c) == 10 and 20 <= test.count(c) <= 40 for c in set(train))


def test_afinn_words_are_split_by_sentiment_without_neutral_or_shared_words(tmp_path: Path) -> None:
    lexicon = rank_targets.afinn_lexicon()
    assert (len(lexicon["negative"]), len(lexicon["positive"])) == (2204, 1176)  # AFINN-en-165, score 0 left out
    assert "abandon" in lexicon["negative"] and "admire" in lexicon["positive"]
    assert "some kind" not in lexicon["negative"] + lexicon["positive"]  # its score is 0
    target = rank_targets.afinn_words(tmp_path, seed=2)
    train, val, test = _splits(target, "text")
    assert [len(labels) for labels in (train, val, test)] == [40, 40, 2 * rank_targets.TEST_WORDS_PER_CLASS]
    assert train.count("positive") == 20 and test.count("negative") == rank_targets.TEST_WORDS_PER_CLASS
    other = rank_targets.afinn_words(tmp_path / "other", seed=3)
    assert target.train.read_text() != other.train.read_text()  # each seed draws its own words


def test_a_random_network_is_registered_with_its_sha256_and_loads_as_saved(tmp_path: Path) -> None:
    import torch

    base = zoo_core.get("resnet10t.c3_in1k")
    name = rank_targets._random_network(base, "bench-test.random-resnet10t", tmp_path / "weights", seed=0)
    spec = zoo_core.get(name)
    assert spec.sha256 and spec.figures.top1 is None and spec.arch == "resnet10t" and not spec.aliases
    loaded = zoo_core.load(name)
    torch.manual_seed(0)
    fresh = zoo_core.plugins.build_backbone(base, None)
    for (key, value), (_, again) in zip(loaded.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(value, again), key
    counted = sum(p.numel() for p in fresh.network.parameters())
    assert spec.params == counted == rank_targets.weights_parameters(name)


def test_kendall_and_top1_hit_read_ties_as_the_benchmark_says() -> None:
    truth = [0.9, 0.7, 0.5, 0.3]
    assert bench_rank.kendall([4, 3, 2, 1], truth) == pytest.approx(1.0)
    assert bench_rank.kendall([1, 2, 3, 4], truth) == pytest.approx(-1.0)
    assert bench_rank.kendall([1, 1, 1, 1], truth) is None  # orders nothing
    assert bench_rank.top1_hit([4, 3, 2, 1], truth) == 1.0 and bench_rank.top1_hit([1, 2, 3, 4], truth) == 0.0
    assert bench_rank.top1_hit([2, 2, 1, 1], truth) == 0.5  # a tie between the best and another: half a hit
    assert bench_rank.top1_hit([1, 2, 3, 3], [0.5, 0.5, 0.9, 0.9]) == 1.0  # both tied picks are best


def test_heuristics_count_a_missing_figure_as_lowest_and_averages_count_no_order_as_zero() -> None:
    candidates = {
        "imagenet-small": bench_rank.Candidate([0.8, 0.9], {"logme": [1.0, 2.0]}, params=5, top1=75.0),
        "imagenet-large": bench_rank.Candidate([0.6, 0.7], {"logme": [0.5, 0.5]}, params=9, top1=80.0),
        "random": bench_rank.Candidate([0.2, 0.2], {"logme": [0.0, 0.1]}, params=None, top1=None),
    }
    found = bench_rank.agreement(candidates, ["logme"])
    assert found["logme"] == {"tau": pytest.approx(1.0), "hit": 1.0}
    assert found[bench_rank.TOP1] == {"tau": pytest.approx(1 / 3), "hit": 0.0}  # 80 > 75 > none
    assert found[bench_rank.LARGEST] == {"tau": pytest.approx(1 / 3), "hit": 0.0}
    text = {
        name: bench_rank.Candidate(c.accuracy, c.scores, params=c.params, top1=None) for name, c in candidates.items()
    }
    flat = bench_rank.agreement(text, ["logme"])
    assert flat[bench_rank.TOP1] == {"tau": None, "hit": pytest.approx(1 / 3)}  # no top-1 at all: a three-way tie
    means = bench_rank.averages([found, flat])
    assert means[bench_rank.TOP1] == {"tau": pytest.approx(1 / 6), "hit": pytest.approx(1 / 6)}
    lines = bench_rank.verdicts(means | {"hscore": {"tau": 0.1, "hit": 0.0}}, ["logme", "hscore"])
    assert lines[0].startswith("logme beats both heuristics on average tau (+1.00;")
    assert lines[1].startswith("hscore does NOT beat largest ImageNet top-1 or largest model on average tau (+0.10;")
