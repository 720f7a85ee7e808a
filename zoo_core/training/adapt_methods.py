"""The three ways `zoo adapt` changes a trained network for unlabelled target data, from the papers:

- ``adabn`` (Li et al. 2016, "Revisiting Batch Normalization For Practical Domain Adaptation"): every
  BatchNorm's running mean and variance re-estimated on the target; no weight changes.
- ``tent`` (Wang et al. 2021, "Tent: Fully Test-Time Adaptation by Entropy Minimization"; the reference code,
  github.com/DequanWang/tent): the entropy of the network's predictions on the target minimised by Adam,
  updating only the normalisation layers' affine parameters (scale and shift) while BatchNorm normalises by
  each batch's own statistics. TENT adapts online and keeps using batch statistics; a saved model, which
  exports and predicts one image at a time, needs fixed ones, so they are then fixed by AdaBN on the target.
- ``pseudo`` (Lee 2013, "Pseudo-Label"): the run's own predictions on the target that reach ``--threshold``
  become labels, the whole network is trained on them with cross-entropy, and the BatchNorm statistics are
  re-estimated on the target after. The predictions are made with the statistics already re-estimated on
  the target (AdaBN first): with the source's statistics, on a shifted target they are mostly wrong.

The target's batches are drawn in a seeded random order: a folder lists its images class by class, and a
batch of one class would give BatchNorm a variance without the between-class part. A last batch of one item
is left out of training (BatchNorm cannot normalise a single item over 1x1 maps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo_core.training.adapt_options import AdaptOptions
from zoo_core.training.baselines import recompute_batchnorm
from zoo_core.training.data import Dataset
from zoo_core.training.device import to_device
from zoo_core.training.features import batches, quiet
from zoo_core.training.loop import CLASSIFICATION, Epoch, Objective, train_epochs

__all__ = ["Target", "adabn", "affine_norms", "batchnorms", "confident", "pseudo", "tent"]

NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


@dataclass(frozen=True)
class Target:
    """The unlabelled target as the methods read it: items (every label 0), preprocessing, options, device."""

    dataset: Dataset
    transform: Any
    options: AdaptOptions
    device: torch.device

    def batches(self, epoch: int = 0) -> Iterator[tuple[Any, torch.Tensor]]:
        """One pass over the target in the order `seed + epoch` draws, on the device."""
        generator = torch.Generator().manual_seed(self.options.seed + epoch)
        order = torch.randperm(len(self.dataset.items), generator=generator).tolist()
        if len(order) % self.options.batch_size == 1:
            order = order[:-1]
        passing = batches(
            self.dataset,
            self.transform,
            self.options.batch_size,
            order,
            workers=self.options.workers,
            pin_memory=self.device.type == "cuda",
        )
        for inputs, labels in passing:
            yield to_device(inputs, self.device), labels


def batchnorms(module: nn.Module) -> list[nn.Module]:
    """Every BatchNorm layer of `module`: what AdaBN re-estimates."""
    return [layer for layer in module.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)]


def affine_norms(module: nn.Module) -> list[nn.Module]:
    """Every normalisation layer (BatchNorm, LayerNorm, GroupNorm) with a scale and shift: what TENT trains."""
    return [
        layer for layer in module.modules() if isinstance(layer, NORMS) and getattr(layer, "weight", None) is not None
    ]


def adabn(model: nn.Module, target: Target) -> None:
    """AdaBN: the running statistics of every BatchNorm set to their average over the target."""
    recompute_batchnorm(model, target.batches())


def _entropy(outputs: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """The mean entropy of the softmax predictions: TENT's loss (labels unused)."""
    logits = outputs.float()
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()


def _nothing_counted(outputs: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    return 0, 0  # the target has no labels to count hits against


ENTROPY = Objective(loss=_entropy, hits=_nothing_counted)


def _train(
    model: nn.Module, parameters: list[nn.Parameter], objective: Objective, target: Target, trained_on: Target
) -> list[Epoch]:
    """Adam on `parameters` for the options' epochs over `trained_on`, batch statistics in the forward pass;
    before each epoch's measure (`objective` on `trained_on`), AdaBN on the whole `target` fixes the
    statistics, so the epoch kept (the lowest measure) is the model as it will be saved. Returns the curve."""
    options = trained_on.options
    assert options.epochs is not None and options.lr is not None  # `AdaptOptions.for_method` filled them
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters, lr=options.lr)
    curve, best = train_epochs(
        model,
        optimizer,
        None,
        trained_on.batches,
        lambda: trained_on.batches(options.epochs or 0),  # a fixed order, unlike the training passes'
        options.epochs,
        options.epochs,  # patience: every epoch runs; the best one is kept
        None,
        False,
        options.seed,
        quiet=quiet(),
        before_evaluation=lambda: adabn(model, target),
        objective=objective,
        device=target.device,
        precision=options.precision,
    )
    model.load_state_dict(best)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return curve


def tent(model: nn.Module, target: Target) -> list[Epoch]:
    """TENT: the normalisation layers' affine parameters trained to lower the predictions' entropy on the
    target; the statistics then fixed by AdaBN. Returns the curve (val_loss: the target's mean entropy)."""
    parameters = [parameter for layer in affine_norms(model) for parameter in layer.parameters(recurse=False)]
    return _train(model, parameters, ENTROPY, target, target)


def confident(scores: Any, threshold: float) -> tuple[list[int], list[int]]:
    """(the items whose top probability in `scores` reaches `threshold`, their predicted classes)."""
    top = scores.max(axis=1)
    kept = [index for index, value in enumerate(top.tolist()) if value >= threshold]
    return kept, [int(scores[index].argmax()) for index in kept]


def pseudo(model: nn.Module, target: Target, labelled: Dataset) -> list[Epoch]:
    """Pseudo-labels: the whole network trained with cross-entropy on `labelled`, the target items the run
    was sure of labelled with its predictions (`confident`); the statistics then re-estimated on the whole
    target. Returns the curve (val_loss, val_accuracy: against the pseudo-labels)."""
    trained_on = dataclasses.replace(target, dataset=labelled)
    return _train(model, list(model.parameters()), CLASSIFICATION, target, trained_on)
