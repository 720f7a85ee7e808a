"""`CaffeBackbone`: a converted Caffe net behind zoo's `Backbone` surface.

The classifier is the net's last InnerProduct (a trailing Softmax is dropped: zoo's models give logits);
features are what that classifier reads. Layer groups are the runs of layers at one resolution — the
stages of these nets, between pooling or strided layers — so `freeze(all_but_last=N)` trains the head and
the last N - 1 stages.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from zoo_caffe.layers import InnerProduct
from zoo_caffe.network import CaffeNetwork
from zoo_caffe.reader import read_net
from zoo_core.backbone import Backbone, LayerGroup, new_head
from zoo_core.errors import PluginError
from zoo_core.specs import ModelSpec

__all__ = ["CaffeBackbone"]


class CaffeBackbone(Backbone):
    def __init__(self, spec: ModelSpec, weights_dir: Path | None) -> None:
        super().__init__(spec)
        if weights_dir is None:
            raise PluginError(f"'{spec.name}' is defined by its deploy.prototxt: load it with pretrained=True")
        self.network = CaffeNetwork(read_net(weights_dir / "deploy.prototxt"))
        self.network.load_weights(weights_dir / "model.safetensors")
        classifiers = [key for key, module in self.network.layers.items() if isinstance(module, InnerProduct)]
        if not classifiers:
            raise PluginError(f"'{spec.name}': the net has no InnerProduct layer to serve as its classifier")
        # the classifier leaves the network (with what follows it, a Softmax): one module under one name, so a
        # state dict holds it once and a saved run loads back whole
        classifier = self.network.split_off(classifiers[-1])
        assert isinstance(classifier, InnerProduct)
        self.head: nn.Module = classifier
        self.width = classifier.in_features  # what the head reads: `feature_dim`
        self.until: str | None = None  # the layer whose output the head reads; None: the network's output
        self.stages = self._stages(list(self.network.layers))
        self.pooled = False  # after drop_last: feature maps are averaged over space

    def _stages(self, keys: list[str]) -> list[list[str]]:
        """Runs of layers at one resolution: a layer that shrinks the maps opens a stage (a strided
        convolution), or, for a pooling layer, closes the one it ends."""
        stages: list[list[str]] = [[]]
        resolution: tuple[int, ...] | None = None
        for key in keys:
            size = self.network.spatial.get(key)
            shrinks = bool(size and resolution and size < resolution)
            pooling = isinstance(self.network.layers[key], (nn.MaxPool2d, nn.AvgPool2d))
            if shrinks and not pooling and stages[-1]:
                stages.append([])
            stages[-1].append(key)
            if shrinks and pooling:
                stages.append([])
            resolution = size or resolution
        stages = [stage for stage in stages if stage]
        if len(stages) > 1 and not sum(p.numel() for key in stages[-1] for p in self.network.layers[key].parameters()):
            stages[-2:] = [stages[-2] + stages[-1]]  # a trailing dropout is no stage of its own
        return stages

    @property
    def feature_dim(self) -> int:
        return self.width

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.network(x, until=self.until)
        return out.mean(dim=(2, 3)) if self.pooled else out.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))
        return logits

    def reset_head(self, num_classes: int) -> None:
        self.head = new_head(self.feature_dim, num_classes)

    def layer_groups(self) -> list[LayerGroup]:
        groups = [
            LayerGroup(f"stage{index}", tuple(self.network.layers[key] for key in stage))
            for index, stage in enumerate(self.stages)
        ]
        return [*groups, LayerGroup("head", (self.head,))]

    def drop_last(self, n: int) -> None:
        """Features from the end of an earlier stage, averaged over space, under a new head."""
        after_stem = len(self.stages) - 1
        if not 0 < n <= after_stem:
            raise ValueError(
                f"{self.spec.name} has {after_stem} stages after its stem: drop_last takes 1 to {after_stem}"
            )
        self.stages = self.stages[:-n]
        self.until, self.pooled = self.stages[-1][-1], True
        kept = list(self.network.layers)
        self.network.split_off(kept[kept.index(self.until) + 1])  # the dropped stages' layers go
        with torch.no_grad():
            self.width = self.features(torch.zeros(self.network.input_shape)).shape[1]
        self.head = new_head(self.width, self.spec.output.num_classes or 1000)
