"""The baselines beside a transfer run: pixels and words under a logistic regression, k-NN on features, and
BatchNorm statistics re-estimated so that a network trained from scratch is evaluated fairly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the train extra installs scikit-learn")
torch = pytest.importorskip("torch", reason="the vision extra installs torch")

from PIL import Image  # noqa: E402

from zoo_core.errors import DataError  # noqa: E402
from zoo_core.training.baselines import knn_baseline, pixel_baseline, recompute_batchnorm  # noqa: E402
from zoo_core.training.data import Dataset, load_dataset  # noqa: E402


def _accuracy(probabilities: np.ndarray, labels: list[int]) -> float:
    return float((probabilities.argmax(axis=1) == np.asarray(labels)).mean())


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Dataset]:
    """Digits 5-9: 10 training images per class and the held-out test images (zoo_core.training.digits)."""
    from zoo_core.training.digits import write_digits

    folders = write_digits(tmp_path_factory.mktemp("digits"))
    train = load_dataset(folders[1], "image")
    return train, load_dataset(folders[-1], "image", train.classes)


def test_pixels_on_digits_are_far_above_chance(digits: tuple[Dataset, Dataset]) -> None:
    train, test = digits
    (train_p, test_p) = pixel_baseline(train, [train, test])
    assert test_p.shape == (len(test.items), 5)
    np.testing.assert_allclose(test_p.sum(axis=1), 1.0)
    assert _accuracy(train_p, train.labels) == 1.0
    assert _accuracy(test_p, test.labels) > 0.9  # chance is 0.2; 93.7% with this seed's split


def _square(path: Path, colour: tuple[int, int, int], size: int, offset: int) -> str:
    image = Image.new("RGB", (size, size), (128, 128, 128))
    image.paste(colour, (offset, offset, offset + size // 2, offset + size // 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return str(path)


def test_pixels_keep_colour_and_take_any_size(tmp_path: Path) -> None:
    """Red and green squares of equal brightness in grey: only colour tells them apart."""
    red, green = (200, 0, 0), (0, 102, 0)  # luma 59.8 and 59.9: the same grey
    items, labels = [], []
    for index in range(12):
        for label, colour in enumerate((red, green)):
            size = 20 + 7 * index  # every image a different size
            items.append(_square(tmp_path / str(label) / f"{index}.png", colour, size, (index % 3) * size // 8))
            labels.append(label)
    data = Dataset("image", items, labels, ["red", "green"])
    train, test = data.subset(list(range(8))), data.subset(list(range(8, 24)))
    (test_p,) = pixel_baseline(train, [test])
    assert _accuracy(test_p, test.labels) == 1.0


TOPICS = {
    "sports": ["football", "goal", "team", "match", "striker", "league"],
    "finance": ["bank", "shares", "market", "investors", "profit", "stocks"],
    "weather": ["rain", "storm", "wind", "snow", "forecast", "cloudy"],
}


def _sentences(pairs: list[list[int]]) -> Dataset:
    """A sentence per pair of word positions, for each topic: the frame is the same, only topic words differ."""
    items, labels = [], []
    for label, words in enumerate(TOPICS.values()):
        for first, second in pairs:
            items.append(f"people talked about the {words[first]} and the {words[second]} today")
            labels.append(label)
    return Dataset("text", items, labels, list(TOPICS))


def test_bag_of_words_learns_a_topic_task() -> None:
    """Three training sentences a topic, each topic word in one of them; tested on 20 other pairings."""
    pairings = np.random.default_rng(0).permuted(np.tile(np.arange(6), (20, 1)), axis=1)[:, :2]
    train, test = _sentences([[0, 1], [2, 3], [4, 5]]), _sentences(pairings.tolist())
    (test_p,) = pixel_baseline(train, [test])
    assert test_p.shape == (60, 3)
    np.testing.assert_allclose(test_p.sum(axis=1), 1.0)
    assert _accuracy(test_p, test.labels) == 1.0  # every test word was seen in training


def test_bag_of_words_without_words_is_one_line() -> None:
    train = Dataset("text", ["!!", "...", "?", "--"], [0, 0, 1, 1], ["a", "b"])
    with pytest.raises(DataError, match="no words in the training texts"):
        pixel_baseline(train, [train])


def test_knn_is_exact_on_separable_features_and_shares_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    directions = np.eye(4)[:3] * 10  # three classes along three axes
    counts = [6, 3, 6]  # the smallest class has 3: k = 3
    train_x = np.concatenate([directions[c] + rng.normal(0, 0.5, (n, 4)) for c, n in enumerate(counts)])
    train_y = [c for c, n in enumerate(counts) for _ in range(n)]
    test_y = [0, 1, 2] * 5
    test_x = np.stack([directions[c] * rng.uniform(0.1, 50) + rng.normal(0, 0.5, 4) for c in test_y])  # any norm
    (shares,) = knn_baseline(train_x, train_y, [test_x], classes=3)
    assert shares.shape == (15, 3)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert shares.argmax(axis=1).tolist() == test_y
    np.testing.assert_allclose(shares.max(axis=1), 1.0)  # all three neighbours agree
    assert set(np.round(shares * 3, 6).ravel()) <= {0.0, 1.0, 2.0, 3.0}  # vote shares of k = 3


def test_knn_shares_count_the_votes() -> None:
    train_x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 1.0]])
    (shares,) = knn_baseline(train_x, [0, 0, 1, 1, 1], [np.array([[1.0, 0.05]])], classes=3, k=3)
    np.testing.assert_allclose(shares, [[2 / 3, 1 / 3, 0.0]])  # a class with no training item gets 0


SCRATCH_ENTRY = {
    "name": "scratch.resnet10t",
    "plugin": "timm",
    "arch": "resnet10t",
    "family": "resnet",
    "task": "image-classification",
    "modality": "image",
    "source": {"url": "file:///never-read.safetensors"},  # random weights: nothing is downloaded
    "input": {"channels": 1, "height": 32, "width": 32, "mean": [0.5], "std": [0.5]},
}  # random weights: nothing is downloaded


def _digit_tensors(
    digits: list[int], shots: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 digits of `digits` as 32x32 grey tensors scaled like `zoo pretrain`'s input (mean and
    std 0.5): `shots` training images per class, the rest the test set; labels are positions in `digits`."""
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label, digit in enumerate(digits):
        members = rng.permutation(np.flatnonzero(data.target == digit))
        train += [(index, label) for index in members[:shots]]
        test += [(index, label) for index in members[shots:]]

    def tensors(pairs: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.tensor(data.images[[index for index, _ in pairs]], dtype=torch.float32)[:, None] / 16
        inputs = torch.nn.functional.interpolate(images, size=32, mode="bilinear")
        return (inputs - 0.5) / 0.5, torch.tensor([label for _, label in pairs])

    return (*tensors(train), *tensors(test))


def test_recomputed_batchnorm_lets_a_scratch_network_learn() -> None:
    """resnet10t from random weights on 4 digit classes x 10 images (the issue's "done when"): with the
    running statistics it trained with it is barely above chance; re-estimated on the training set, well
    above, with not one weight changed."""
    from zoo_core.loading import load
    from zoo_core.registry import parse_spec
    from zoo_core.training.model import TransferModel, make_head
    from zoo_core.training.run import pinned_threads

    train_x, train_y, test_x, test_y = _digit_tensors([0, 1, 2, 3], shots=10, seed=0)
    with pinned_threads(1):  # two threads on two busy cores are ten times slower, and other bits
        torch.manual_seed(0)
        backbone = load(parse_spec(SCRATCH_ENTRY, "test"), pretrained=False)
        model = TransferModel(backbone, make_head("linear", backbone.feature_dim, 4))
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)  # the quickstart's budget: batches of 16
        for _ in range(8):
            model.train()
            for chunk in torch.randperm(len(train_y)).split(16):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(train_x[chunk]), train_y[chunk]).backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            before = float((model(test_x).argmax(1) == test_y).float().mean())
        weights = {name: value.clone() for name, value in model.named_parameters()}
        recompute_batchnorm(model, zip(train_x.split(16), train_y.split(16), strict=True))
        with torch.no_grad():
            after = float((model(test_x).argmax(1) == test_y).float().mean())
    assert after > 0.85 and after - before > 0.3, (before, after)  # chance is 0.25; 57% and 96% measured
    assert not model.training
    assert all(layer.momentum == 0.1 for layer in model.modules() if isinstance(layer, torch.nn.BatchNorm2d))
    assert all(torch.equal(value, weights[name]) for name, value in model.named_parameters())


def test_recompute_batchnorm_averages_over_the_batches() -> None:
    layer = torch.nn.Sequential(torch.nn.BatchNorm1d(2), torch.nn.Dropout(0.5))
    layer.train()
    first, second = torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([[5.0, 2.0], [7.0, 2.0]])
    recompute_batchnorm(layer, [(first, torch.zeros(2)), (second, torch.zeros(2))])
    norm = layer[0]
    assert isinstance(norm, torch.nn.BatchNorm1d)
    torch.testing.assert_close(norm.running_mean, torch.tensor([4.0, 1.0]))
    torch.testing.assert_close(norm.running_var, torch.tensor([2.0, 0.0]))  # each batch's unbiased variance
    assert layer.training and layer[1].training  # the caller's mode is back


def test_recompute_batchnorm_joins_a_batch_of_one_to_the_next() -> None:
    """Training mode refuses one item a channel; a training set of 33 in batches of 16 ends with one."""
    norm = torch.nn.BatchNorm1d(1)
    items = [torch.tensor([[value]]) for value in (2.0, 4.0, 6.0, 8.0)]
    batches = [items[0], torch.cat(items[1:3]), items[3]]
    recompute_batchnorm(norm, [(inputs, torch.zeros(len(inputs))) for inputs in batches])
    torch.testing.assert_close(norm.running_mean, torch.tensor([4.0]))  # 2, 4, 6 together; the last 8 left out
    torch.testing.assert_close(norm.running_var, torch.tensor([4.0]))


def test_pixels_of_an_unreadable_image_name_it(tmp_path: Path) -> None:
    good = [_square(tmp_path / "0" / f"{index}.png", (200, 0, 0), 20, 0) for index in range(2)]
    broken = tmp_path / "1" / "broken.png"
    broken.parent.mkdir()
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    data = Dataset("image", [*good, str(broken)], [0, 0, 1], ["red", "other"])
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        pixel_baseline(data, [data])
