"""`TimmBackbone`: a timm model behind zoo's `Backbone` surface.

Layer groups follow timm's `feature_info` stages (for ResNet: stem, layer1…layer4, head), so freezing and
`drop_last` act on the units the transfer-learning literature talks about. `drop_last` uses timm's
`prune_intermediate_layers` and `forward_intermediates`, which every classic timm CNN supports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from zoo_core.backbone import Backbone, LayerGroup, new_head
from zoo_core.specs import ImageInput, ModelSpec
from zoo_core.weights import apply_state_dict, load_state_dict
from zoo_timm.adapters import adapt_checkpoint


class TimmBackbone(Backbone):
    def __init__(self, spec: ModelSpec, weights_dir: Path | None) -> None:
        super().__init__(spec)
        # timm's models share an interface (forward_features, forward_head, feature_info, …) that their
        # nn.Module type does not declare: hold the model as Any rather than cast at every use.
        channels = spec.input.channels if isinstance(spec.input, ImageInput) else 3
        self.network: Any = timm.create_model(
            spec.arch, pretrained=False, num_classes=spec.output.num_classes or 0, in_chans=channels
        )
        if weights_dir is not None:
            files = [name for name in spec.source.files if name.endswith((".safetensors", ".bin", ".pth"))]
            path = weights_dir / (files[0] if files else "model.safetensors")
            state = adapt_checkpoint(load_state_dict(path), self.network, path, spec.arch)
            self.dropped_classifier = tuple(apply_state_dict(self.network, state, path, _classifier(self.network)))
        self.stages = self._stages()  # (timm feature index, module name, channels)
        self.cut: int | None = None  # position in self.stages of the last stage kept, once drop_last was called
        self.head: nn.Module | None = None  # our own classifier after reset_head or drop_last; None: timm's

    def _stages(self) -> list[tuple[int, str, int]]:
        """timm's feature stages; a stage that adds no parameters (VGG's last pool) joins the one before."""
        leaves = self._leaves()
        stages: list[tuple[int, str, int]] = []
        start = 0
        for index, info in enumerate(self.network.feature_info):
            inside = [i for i, (name, _) in enumerate(leaves) if _within(name, info["module"])]
            end = max(inside) + 1 if inside else start
            adds_parameters = any(True for _, module in leaves[start:end] for _ in module.parameters())
            entry = (index, info["module"], int(info["num_chs"]))
            if stages and not adds_parameters:
                stages[-1] = entry
            else:
                stages.append(entry)
            start = end
        return stages

    def _leaves(self) -> list[tuple[str, nn.Module]]:
        return [(name, module) for name, module in self.network.named_modules() if not list(module.children())]

    @property
    def feature_dim(self) -> int:
        if self.cut is not None:
            return self.stages[self.cut][2]
        return int(getattr(self.network, "head_hidden_size", None) or self.network.num_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.cut is None:
            features: torch.Tensor = self.network.forward_head(self.network.forward_features(x), pre_logits=True)
            return features
        index = self.stages[self.cut][0]
        maps: torch.Tensor = self.network.forward_intermediates(x, indices=[index], intermediates_only=True)[-1]
        return maps.mean(dim=(2, 3))  # global average pooling, as the dropped head did

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.network(x) if self.head is None else self.head(self.features(x))
        return logits

    def reset_head(self, num_classes: int) -> None:
        head = new_head(self.feature_dim, num_classes)
        if self.cut is None:
            self.network.reset_classifier(0)  # timm's own classifier goes: the new head reads features(x)
        self.head = head

    def drop_last(self, n: int) -> None:
        last = len(self.stages) - 1 if self.cut is None else self.cut
        if not 0 < n <= last:
            raise ValueError(f"{self.spec.name} has {last} stages after its stem: drop_last takes 1 to {last}")
        self.cut = last - n
        # a list selects stage indices; a bare int would mean "the last n stages" to timm
        self.network.prune_intermediate_layers(indices=[self.stages[self.cut][0]], prune_norm=True, prune_head=True)
        self.head = new_head(self.feature_dim, self.spec.output.num_classes or 1000)

    def layer_groups(self) -> list[LayerGroup]:
        """Leaf modules in registration (forward) order, cut at the end of each feature stage."""
        leaves = self._leaves()
        kept = self.stages if self.cut is None else self.stages[: self.cut + 1]
        groups: list[LayerGroup] = []
        start = 0
        for index, (_, stage, _) in enumerate(kept):
            inside = [i for i, (name, _) in enumerate(leaves) if _within(name, stage)]
            end = max(inside) + 1 if inside else start
            groups.append(LayerGroup("stem" if index == 0 else stage, tuple(m for _, m in leaves[start:end])))
            start = end
        rest = tuple(m for _, m in leaves[start:]) if self.cut is None else ()  # timm's pooling and classifier
        groups.append(LayerGroup("head", rest + ((self.head,) if self.head is not None else ())))
        return groups


def _classifier(network: Any) -> tuple[str, ...]:
    """The module names of the network's classifier, as timm's pretrained config gives them."""
    names = (getattr(network, "pretrained_cfg", None) or {}).get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def _within(name: str, stage: str) -> bool:
    return name == stage or name.startswith(stage + ".")
