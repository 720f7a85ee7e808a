"""`TransferModel`: a backbone and a new head on its features — what every strategy trains and saves."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo_core.backbone import Backbone
from zoo_core.errors import RunOptionError

__all__ = ["TransferModel", "make_head", "run_backbone"]


def make_head(kind: str, features: int, classes: int) -> nn.Module:
    """A linear classifier, or a small MLP (one hidden layer of 256 with dropout)."""
    if kind == "mlp":
        return nn.Sequential(nn.Linear(features, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, classes))
    return nn.Linear(features, classes)


def run_backbone(backbone: Any, drop_last: int) -> set[str]:
    """Shape a loaded backbone as every run uses it — cut by ``--drop-last``, then without its own classifier
    (``reset_head(0)``), as the run's head reads its `features` — so a saved run holds only what its export
    uses. Returns the names of the tensors the backbone held on the way and no longer holds, which a run
    folder written before zoo removed them may still have (`zoo_core.training.saved` leaves them out)."""
    if not isinstance(backbone, Backbone):  # word vectors: no layers to cut, no tensors in the run
        if drop_last:
            raise RunOptionError(f"--drop-last {drop_last}: word vectors have no layers to drop; leave it out")
        return set()
    held = set(backbone.state_dict())
    if drop_last:
        try:
            backbone.drop_last(drop_last)
        except ValueError as error:  # the contract's "NAME has K stages after its stem: drop_last takes 1 to K"
            raise RunOptionError(f"--drop-last {drop_last}: {error}") from None
        held |= set(backbone.state_dict())
    backbone.reset_head(0)
    return held - set(backbone.state_dict())


class TransferModel(nn.Module):
    def __init__(self, backbone: Any, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: Any) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.backbone.features(x))
        return logits
