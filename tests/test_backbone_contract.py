"""The Backbone contract: a subclass that leaves out a member the commands use fails when it is built, naming it."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import zoo_core  # noqa: E402


def test_a_backbone_missing_members_fails_at_construction_naming_them() -> None:
    class Half(zoo_core.Backbone):  # type: ignore[name-defined,misc]
        @property
        def feature_dim(self) -> int:
            return 4

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x

    spec = zoo_core.get("resnet18")
    with pytest.raises(TypeError, match=r"Half does not define reset_head, layer_groups, drop_last: a Backbone"):
        Half(spec)


def test_layer_group_is_exported_from_zoo_core() -> None:
    from zoo_core.backbone import LayerGroup

    assert zoo_core.LayerGroup is LayerGroup
    group = zoo_core.LayerGroup("head", (torch.nn.Linear(2, 3),))
    assert len(group.parameters()) == 2
