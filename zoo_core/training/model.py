"""`TransferModel`: a backbone and a new head on its features — what every strategy trains and saves."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["TransferModel", "make_head"]


def make_head(kind: str, features: int, classes: int) -> nn.Module:
    """A linear classifier, or a small MLP (one hidden layer of 256 with dropout)."""
    if kind == "mlp":
        return nn.Sequential(nn.Linear(features, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, classes))
    return nn.Linear(features, classes)


class TransferModel(nn.Module):
    def __init__(self, backbone: Any, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: Any) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.backbone.features(x))
        return logits
