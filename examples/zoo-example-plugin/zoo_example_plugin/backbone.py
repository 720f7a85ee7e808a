"""digits_cnn: a small convolutional network for 8x8 grayscale digits, behind zoo's `Backbone` surface.

A stem and two stages of 3x3 convolutions (each stage doubles the channels and halves the picture), global
average pooling, then a linear head. Its layer groups are stem, stage1, stage2 and head, so
`freeze(all_but_last=2)` trains stage2 and the head; `drop_last(n)` removes the last n stages still kept.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from zoo_core.backbone import Backbone, LayerGroup, new_head
from zoo_core.specs import ModelSpec
from zoo_core.weights import apply_state_dict

WIDTHS = {"digits_cnn_small": 8, "digits_cnn_wide": 12}  # the stem's channels, by arch; each stage doubles them
STAGES = 2  # after the stem


def _convolution(inputs: int, outputs: int, *pool: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(), *pool)


class DigitsCNN(Backbone):
    """The network of the ``digits_cnn`` entries, built for `spec.arch`, with the weights in `weights_dir`."""

    def __init__(self, spec: ModelSpec, weights_dir: Path | None) -> None:
        super().__init__(spec)
        self.width = WIDTHS[spec.arch]
        stages = [_convolution(self.width << i, self.width << (i + 1), nn.MaxPool2d(2)) for i in range(STAGES)]
        self.stages = nn.ModuleList([_convolution(1, self.width), *stages])  # the stem first
        self.head = new_head(self.feature_dim, spec.output.num_classes or 1000)
        if weights_dir is not None:  # safetensors: reading the file runs no code from it
            path = weights_dir / spec.source.files[0]
            # a one-line error for tensors that do not fit; a checkpoint classifier for another class count
            # is dropped (and recorded, so zoo never presents the fresh one's outputs as answers)
            self.dropped_classifier = tuple(apply_state_dict(self, load_file(path), path, classifier=("head",)))

    @property
    def feature_dim(self) -> int:
        return self.width << (len(self.stages) - 1)  # the channels of the last stage kept

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))
        return logits

    def reset_head(self, num_classes: int) -> None:
        self.head = new_head(self.feature_dim, num_classes)  # 0: no classifier, forward gives the features

    def drop_last(self, n: int) -> None:
        kept = len(self.stages) - 1
        if not 1 <= n <= kept:
            raise ValueError(f"{self.spec.name} has {kept} stages after its stem: drop_last takes 1 to {kept}")
        del self.stages[-n:]
        self.reset_head(self.spec.output.num_classes or 1000)

    def layer_groups(self) -> list[LayerGroup]:
        names = ["stem", *(f"stage{index}" for index in range(1, len(self.stages)))]
        return [
            *(LayerGroup(name, (stage,)) for name, stage in zip(names, self.stages, strict=True)),
            LayerGroup("head", (self.head,)),
        ]
