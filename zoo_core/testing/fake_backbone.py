"""`FakeBackbone`: what `zoo_core.testing.FakePlugin` builds — a real `Backbone`, tiny and random, that
remembers the spec and folder it was built from so a test can check the call. Imports torch: loaded only
when a fake model is built, not with the pytest plugin."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from zoo_core.backbone import Backbone, LayerGroup, new_head
from zoo_core.specs import ImageInput, ModelSpec

__all__ = ["FakeBackbone"]

WIDTH = 4  # features per input


class FakeBackbone(Backbone):
    """One linear layer on the flattened input (images: channels x height x width values), then a head."""

    def __init__(self, spec: ModelSpec, weights_dir: Path | None) -> None:
        super().__init__(spec)
        self.weights_dir = weights_dir
        image = spec.input if isinstance(spec.input, ImageInput) else None
        values = image.channels * image.height * image.width if image else WIDTH
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(values, WIDTH))
        self.head = new_head(WIDTH, spec.output.num_classes or 2)

    @property
    def feature_dim(self) -> int:
        return WIDTH

    def features(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.stem(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))
        return logits

    def reset_head(self, num_classes: int) -> None:
        self.head = new_head(WIDTH, num_classes)

    def layer_groups(self) -> list[LayerGroup]:
        return [LayerGroup("stem", (self.stem,)), LayerGroup("head", (self.head,))]

    def drop_last(self, n: int) -> None:
        raise ValueError(f"{self.spec.name} has 0 stages after its stem: drop_last takes 1 to 0")
