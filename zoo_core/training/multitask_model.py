"""`MultiTaskModel`: one backbone and one head per task on its features — what a multi-task run trains and
saves (``model.safetensors``: ``backbone.*`` and ``heads.<task>.*``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["MultiTaskModel", "TaskHeads", "per_task"]


def per_task(heads: nn.ModuleDict, features: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every head's logits on the same features, by task."""
    return {name: head(features) for name, head in heads.items()}


class TaskHeads(nn.Module):
    """The heads alone, on features: {task: logits}. A features run trains them on the frozen backbone's
    cached features; `MultiTaskModel` applies them to its backbone's."""

    def __init__(self, heads: Mapping[str, nn.Module] | nn.ModuleDict) -> None:
        super().__init__()
        self.heads = nn.ModuleDict(dict(heads.items()))  # the same modules: training them trains the model's

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return per_task(self.heads, features)


class MultiTaskModel(nn.Module):
    """A backbone and `TaskHeads` on its features; `heads` is the ModuleDict, so the saved names are
    ``heads.<task>.*``."""

    def __init__(self, backbone: Any, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = TaskHeads(heads).heads

    @property
    def tasks(self) -> list[str]:
        return list(self.heads)

    def forward(self, x: Any) -> dict[str, torch.Tensor]:
        return per_task(self.heads, self.backbone.features(x))
