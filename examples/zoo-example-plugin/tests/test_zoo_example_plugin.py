"""The plugin's own tests, on the installed plugin, with zoo's fixtures (the `zoo` pytest plugin).

`zoo_env` gives each test a fresh ZOO_HOME; `register_plugin(module, "example")` registers the plugin under
test in place of the installed one of that name. The weights are the ones this distribution ships
(written by make_weights.py, developed here; not third-party weights), so these tests need no network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import zoo_example_plugin
from PIL import Image, ImageOps
from zoo_example_plugin.models import ENTRIES

import zoo_core
from zoo_core.images import decode, labelled_images, normalised
from zoo_core.specs import ImageInput
from zoo_core.training.digits import DigitFolders, write_digits

Register = Callable[[object, str], None]


@pytest.fixture
def example(register_plugin: Register) -> None:
    register_plugin(zoo_example_plugin, "example")


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> DigitFolders:
    """scikit-learn's digits as zoo's demo writes them: the source split (0-4) and the target splits (5-9)."""
    return write_digits(tmp_path_factory.mktemp("digits"))


def _batch(folder: Path, spec: ImageInput) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = labelled_images(folder)
    pixels = np.stack([normalised(decode(path), spec) for path, _ in pairs])
    return torch.from_numpy(pixels), torch.tensor([int(label) for _, label in pairs])


@pytest.mark.parametrize("name", ["digits_cnn.small", "digits_cnn.wide"])
def test_the_shipped_weights_recognise_the_digits_they_were_trained_on(
    example: None, digits: DigitFolders, name: str
) -> None:
    backbone = zoo_core.load(name)
    assert isinstance(backbone.spec.input, ImageInput)
    images, labels = _batch(digits.source, backbone.spec.input)
    with torch.no_grad():
        accuracy = float((backbone(images).argmax(dim=1) == labels).float().mean())
    assert accuracy > 0.97  # make_weights.py: 100% on the 20% it held out; random weights score about 20%
    assert not backbone.training and backbone.dropped_classifier == ()


def test_forward_features_and_layer_groups(example: None) -> None:
    backbone = zoo_core.load("digits_cnn")  # the alias of digits_cnn.small
    x = torch.zeros(3, 1, 8, 8)
    assert backbone(x).shape == (3, 5) and backbone.features(x).shape == (3, 32) and backbone.feature_dim == 32
    assert [group.name for group in backbone.layer_groups()] == ["stem", "stage1", "stage2", "head"]
    assert backbone.freeze(all_but_last=2) == ["stage2", "head"]
    stem, *_, head = backbone.layer_groups()
    assert not any(p.requires_grad for p in stem.parameters()) and all(p.requires_grad for p in head.parameters())


def test_reset_head_sets_the_outputs_and_zero_removes_the_classifier(example: None) -> None:
    backbone = zoo_core.load("digits_cnn", pretrained=False)
    x = torch.rand(2, 1, 8, 8)
    backbone.reset_head(7)
    assert backbone(x).shape == (2, 7)
    backbone.reset_head(0)
    assert torch.equal(backbone(x), backbone.features(x))
    assert [group.name for group in backbone.layer_groups()][-1] == "head"


def test_drop_last_is_cumulative_and_names_its_range(example: None) -> None:
    backbone = zoo_core.load("digits_cnn.wide", pretrained=False)
    with pytest.raises(ValueError, match=r"^digits_cnn.wide has 2 stages after its stem: drop_last takes 1 to 2$"):
        backbone.drop_last(3)
    backbone.drop_last(1)
    assert backbone.feature_dim == 24 and backbone(torch.zeros(1, 1, 8, 8)).shape == (1, 5)
    assert [group.name for group in backbone.layer_groups()] == ["stem", "stage1", "head"]
    backbone.drop_last(1)  # one more: features now come from the stem
    assert backbone.features(torch.zeros(1, 1, 8, 8)).shape == (1, 12)
    with pytest.raises(ValueError, match="has 0 stages after its stem"):
        backbone.drop_last(1)


def _inverted(source: Path, target: Path) -> Path:
    for path in source.rglob("*.png"):
        copy = target / path.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        ImageOps.invert(Image.open(path)).save(copy)
    return target


def test_check_adds_the_ink_finding_after_zoos_own(example: None, digits: DigitFolders, tmp_path: Path) -> None:
    report = zoo_core.check("digits_cnn", digits.train)
    assert [finding.check for finding in report.findings][-1] == "ink" and len(report.findings) > 1
    assert report.findings[-1].level == "ok" and report.findings[-1].message.startswith("50 of 50 images are light")
    inverted = zoo_core.check("digits_cnn", _inverted(digits.train, tmp_path / "inverted")).findings[-1]
    assert (inverted.check, inverted.level) == ("ink", "warn")
    assert inverted.message.startswith("50 of 50 images are dark ink on a light ground")
    assert inverted.fix is not None and inverted.fix.startswith("invert your images")


def test_a_bad_entry_is_skipped_alone(register_plugin: Register) -> None:
    class WithATypo:
        """The plugin as it would be with one mistyped entry: zoo validates each entry on its own."""

        @zoo_core.hookimpl
        def register_models(self) -> list[dict[str, object]]:
            return [{**ENTRIES[0], "params": "six thousand"}, ENTRIES[1]]

    register_plugin(WithATypo(), "example")
    with pytest.warns(zoo_core.RegistryWarning, match=r"plugin 'example'.*digits_cnn\.small.*params"):
        found = [spec.name for spec in zoo_core.list_models(plugin="example")]
    assert found == ["digits_cnn.wide"]
