"""AlexNet (torchvision's "one weird trick" variant) behind zoo's `Backbone` surface.

Layer groups are its five convolution stages (conv1 is the stem) and the classifier head; the features
are the classifier's 4,096-wide penultimate layer, as in the transfer-learning papers that used AlexNet.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import alexnet

from zoo_core.backbone import Backbone, LayerGroup, new_head
from zoo_core.specs import ModelSpec
from zoo_core.weights import apply_state_dict, load_state_dict

# (group name, index after the stage's last layer in `features`, output channels)
STAGES = [("stem", 3, 64), ("conv2", 6, 192), ("conv3", 8, 384), ("conv4", 10, 256), ("conv5", 13, 256)]


class AlexNetBackbone(Backbone):
    def __init__(self, spec: ModelSpec, weights_dir: Path | None) -> None:
        super().__init__(spec)
        self.network = alexnet(weights=None, num_classes=spec.output.num_classes or 1000)
        if weights_dir is not None:
            name = next((f for f in spec.source.files if f.endswith((".pth", ".safetensors"))), None)
            path = weights_dir / (name or Path(spec.source.url or "").name)
            apply_state_dict(self.network, load_state_dict(path), path)
        self.kept = len(STAGES)  # convolution stages in use; fewer after drop_last
        self.head: nn.Module | None = None  # our classifier after drop_last

    @property
    def feature_dim(self) -> int:
        return 4096 if self.kept == len(STAGES) else STAGES[self.kept - 1][2]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.kept == len(STAGES):
            pooled = torch.flatten(self.network.avgpool(self.network.features(x)), 1)
            penultimate: torch.Tensor = self.network.classifier[:-1](pooled)
            return penultimate
        maps: torch.Tensor = self.network.features(x)
        return maps.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.network(x) if self.head is None else self.head(self.features(x))
        return logits

    def reset_head(self, num_classes: int) -> None:
        if self.head is None:
            self.network.classifier[-1] = new_head(self.feature_dim, num_classes)
        else:
            self.head = new_head(self.feature_dim, num_classes)

    def drop_last(self, n: int) -> None:
        after_stem = self.kept - 1
        if not 0 < n <= after_stem:
            raise ValueError(
                f"{self.spec.name} has {after_stem} stages after its stem: drop_last takes 1 to {after_stem}"
            )
        self.kept -= n
        self.network.features = self.network.features[: STAGES[self.kept - 1][1]]
        # the fully connected layers read the last stage's maps: without it they are unused, and not kept
        self.network.classifier = nn.Sequential()
        self.head = new_head(self.feature_dim, self.spec.output.num_classes or 1000)

    def layer_groups(self) -> list[LayerGroup]:
        layers = list(self.network.features)
        groups, start = [], 0
        for name, end, _ in STAGES[: self.kept]:
            groups.append(LayerGroup(name, tuple(layers[start:end])))
            start = end
        head = (self.network.avgpool, self.network.classifier) if self.head is None else (self.head,)
        return [*groups, LayerGroup("head", head)]
