"""The Backbone contract, held by every built-in backbone: a subclass that leaves out a member the commands use
fails when it is built, naming it; `zoo_core.load` gives eval mode; `reset_head(0)` removes the classifier so
`forward` gives `features`; `drop_last` is cumulative over 1..K stages after the stem, and what it drops leaves
`layer_groups` and the state dict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import zoo_core  # noqa: E402

CAFFE_NET = """name: "small"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 32
input_dim: 32
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 16 kernel_size: 3 pad: 1 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3" convolution_param { num_output: 32 kernel_size: 3 pad: 1 } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool3" top: "fc" inner_product_param { num_output: 10 } }
"""


@dataclass(frozen=True)
class Case:
    """A built-in backbone and what the contract makes of it."""

    groups: list[str]  # layer_groups() names as loaded
    widths: list[int]  # feature_dim as loaded, then after each drop_last(1) down to the stem alone
    classes: int  # the head drop_last installs: spec.output.num_classes or 1000


CASES = {
    "resnet18": Case(["stem", "layer1", "layer2", "layer3", "layer4", "head"], [512, 256, 128, 64, 64], 1000),
    "alexnet": Case(["stem", "conv2", "conv3", "conv4", "conv5", "head"], [4096, 256, 384, 192, 64], 1000),
    "minilm": Case(["embeddings", *(f"layer{i}" for i in range(6)), "head"], [384] * 7, 1000),
    "caffe": Case(["stage0", "stage1", "stage2", "head"], [512, 16, 8], 10),
}


def _caffe_model(tmp_path: Path) -> str:
    """A small converted Caffe net (three conv stages, a 10-way InnerProduct) with random weights, registered."""
    pytest.importorskip("google.protobuf", reason="the caffe extra installs protobuf")
    import caffe_reference
    from test_caffe import write_caffemodel
    from zoo_caffe.convert import convert_caffe
    from zoo_caffe.reader import read_net

    from zoo_core.catalogue_sources import reset_catalogue
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    (tmp_path / "deploy.prototxt").write_text(CAFFE_NET)
    net = read_net(tmp_path / "deploy.prototxt")
    weights: dict[str, list[np.ndarray]] = {}
    caffe_reference.run_net(net, np.zeros((1, 3, 32, 32)), weights, np.random.default_rng(0))
    caffemodel = write_caffemodel(tmp_path / "small.caffemodel", net, weights)
    spec = convert_caffe(tmp_path / "deploy.prototxt", caffemodel, tmp_path / "converted", "small.caffe")
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    return spec.name


def _loaded(case: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Any]:
    """The case's backbone through `zoo_core.load` (random weights where the plugin can make them) and a batch."""
    if case == "minilm":
        request.getfixturevalue("minilm")
        return zoo_core.load("minilm"), ["a cat sat on the mat", "stock markets fell"]
    if case == "caffe":
        return zoo_core.load(_caffe_model(tmp_path)), torch.rand(2, 3, 32, 32) * 255 - 117
    return zoo_core.load(case, pretrained=False), torch.rand(2, 3, 64, 64)


def _in_eval_mode(backbone: Any) -> bool:
    """The backbone and every layer whose output depends on the mode (dropout, batch norm) are in eval mode."""
    moded = (torch.nn.Dropout, torch.nn.modules.batchnorm._BatchNorm)
    return not backbone.training and not any(m.training for m in backbone.modules() if isinstance(m, moded))


@pytest.mark.parametrize("case", list(CASES))
def test_every_builtin_backbone_keeps_the_contract(case: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    expected = CASES[case]
    backbone, x = _loaded(case, request, tmp_path)
    name = backbone.spec.name
    assert _in_eval_mode(backbone)  # zoo_core.load's, for every plugin
    assert [group.name for group in backbone.layer_groups()] == expected.groups
    assert backbone.feature_dim == expected.widths[0]
    with torch.no_grad():
        features = backbone.features(x)
        assert features.shape == (2, expected.widths[0])

        held = set(backbone.state_dict())
        backbone.reset_head(0)  # the classifier goes: forward gives the features, and its tensors leave
        assert torch.equal(backbone(x), features) and torch.equal(backbone(x), backbone.features(x))
        assert set(backbone.state_dict()) < held

        backbone.reset_head(3)  # a fresh Linear(feature_dim, 3), last in the head group
        assert backbone(x).shape == (2, 3) and torch.equal(backbone.features(x), features)
        assert [tuple(p.shape) for p in backbone.layer_groups()[-1].parameters()][-2:] == [
            (3, expected.widths[0]),
            (3,),
        ]
        with pytest.raises(ValueError, match="0 or more classes"):
            backbone.reset_head(-1)

        stages = len(expected.groups) - 2  # K: the stages after the stem
        for wrong in (0, stages + 1):
            with pytest.raises(ValueError) as refused:
                backbone.drop_last(wrong)
            assert str(refused.value) == f"{name} has {stages} stages after its stem: drop_last takes 1 to {stages}"

        for dropped, width in enumerate(expected.widths[1:], start=1):  # one stage more each time: cumulative
            last = backbone.layer_groups()[-2]
            backbone.drop_last(1)
            groups = backbone.layer_groups()
            assert [group.name for group in groups] == [*expected.groups[: -1 - dropped], "head"]
            kept = {id(parameter) for parameter in backbone.parameters()}
            assert not kept & {id(parameter) for parameter in last.parameters()}  # gone from the state dict too
            assert backbone.feature_dim == width and backbone.features(x).shape == (2, width)
            assert backbone(x).shape == (2, expected.classes)  # a fresh head for the spec's classes
            assert [tuple(p.shape) for p in groups[-1].parameters()] == [(expected.classes, width), (expected.classes,)]
        with pytest.raises(ValueError, match=f"{name} has 0 stages after its stem: drop_last takes 1 to 0"):
            backbone.drop_last(1)
        backbone.reset_head(0)
        assert torch.equal(backbone(x), backbone.features(x))
    assert _in_eval_mode(backbone)  # no member changed the mode


def test_a_backbone_missing_members_fails_at_construction_naming_them() -> None:
    class Half(zoo_core.Backbone):  # type: ignore[name-defined,misc]
        @property
        def feature_dim(self) -> int:
            return 4

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x

    spec = zoo_core.get("resnet18")
    with pytest.raises(
        TypeError, match=r"Half does not define forward, reset_head, layer_groups, drop_last: a Backbone"
    ):
        Half(spec)


def test_new_head_is_a_linear_layer_or_none_at_all() -> None:
    from zoo_core.backbone import new_head

    head = new_head(8, 3)
    assert isinstance(head, torch.nn.Linear) and tuple(head.weight.shape) == (3, 8)
    features = torch.rand(2, 8)
    assert torch.equal(new_head(8, 0)(features), features) and not list(new_head(8, 0).parameters())


def test_layer_group_is_exported_from_zoo_core() -> None:
    from zoo_core.backbone import LayerGroup

    assert zoo_core.LayerGroup is LayerGroup
    group = zoo_core.LayerGroup("head", (torch.nn.Linear(2, 3),))
    assert len(group.parameters()) == 2
