"""The three ways `zoo adapt` changes a trained network for unlabelled target data:

- ``adabn`` (Li et al. 2016, "Revisiting Batch Normalization For Practical Domain Adaptation"): the running
  mean and variance of the BatchNorm layers the run trained re-estimated on the target; no weight changes.
- ``tent`` (after Wang et al. 2021, "Tent: Fully Test-Time Adaptation by Entropy Minimization"; the reference
  code, github.com/DequanWang/tent): the entropy of the network's predictions on the target minimised by
  Adam, updating only the scale and shift of the normalisation layers the run trained, while those
  BatchNorms normalise by each batch's own statistics. Where zoo differs from the reference: a saved model,
  which exports and predicts one image at a time, needs fixed statistics, so they are fixed by AdaBN on the
  target after the updates; the adapted model is measured after the whole pass, not batch by batch as it
  adapts (online); nothing is reset between batches (the reference's episodic mode); LayerNorm and GroupNorm
  are trained too (the reference: BatchNorm2d only); the batch is ``--batch-size`` (32: a target of a few
  hundred images gives a few steps a pass; the reference takes 128-200 at the same Adam 1e-3).
- ``pseudo``: one round of confidence-thresholded self-training, a variant of Lee 2013's pseudo-labels (which
  recomputes the labels every step and mixes them with labelled data): the run's predictions on the target
  that reach ``--threshold`` become labels once, and the layers the run trained (its head, and the backbone
  stages its strategy opened) are trained on them with cross-entropy; the statistics of the BatchNorms the
  run trained are then re-estimated on the target. The predictions are made with those statistics already
  re-estimated on the target (AdaBN first): with the source's statistics, on a shifted target they are
  mostly wrong.

Only what the run trained is touched (`trainable_norms`): a frozen layer's BatchNorm statistics are the
pretraining data's, which the head was trained under, and re-estimating them on the target breaks the head
even when the target is not shifted. tent and pseudo run their fixed epochs and keep the last: without
labels there is nothing honest to pick an epoch on (the loss on the target is the method's own objective).

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

__all__ = ["BATCHNORM", "NORMS", "Target", "adabn", "confident", "pseudo", "tent", "trainable_norms"]

BATCHNORM = nn.modules.batchnorm._BatchNorm  # what AdaBN re-estimates
NORMS = (BATCHNORM, nn.LayerNorm, nn.GroupNorm)  # what TENT trains


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


def trainable_norms(model: nn.Module, kinds: type | tuple[type, ...]) -> list[nn.Module]:
    """The normalisation layers of `kinds` in `model` that train: those a frozen layer group does not keep in
    eval mode under ``model.train()`` (`zoo_core.backbone.Backbone.freeze`)."""
    was_training = model.training
    model.train()
    found = [layer for layer in model.modules() if isinstance(layer, kinds) and layer.training]
    model.train(was_training)
    return found


def adabn(model: nn.Module, target: Target) -> None:
    """AdaBN: the running statistics of every BatchNorm that trains set to their average over the target."""
    recompute_batchnorm(model, target.batches(), precision=target.options.precision)


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
    before each epoch's measure (`objective` on `trained_on`, for the curve), AdaBN on the whole `target`
    fixes the statistics as they will be saved. Every epoch runs and the last is kept. Returns the curve."""
    options = trained_on.options
    assert options.epochs is not None and options.lr is not None  # `AdaptOptions.for_method` filled them
    trainable = {parameter: parameter.requires_grad for parameter in model.parameters()}  # restored after
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters, lr=options.lr)
    curve, _ = train_epochs(  # the lowest-loss state it returns is not used: the last epoch is kept
        model,
        optimizer,
        None,
        trained_on.batches,
        lambda: trained_on.batches(options.epochs or 0),  # a fixed order, unlike the training passes'
        options.epochs,
        options.epochs,  # patience: every epoch runs
        None,
        False,
        options.seed,
        quiet=quiet(),
        before_evaluation=lambda: adabn(model, target),
        objective=objective,
        device=target.device,
        precision=options.precision,
    )
    for parameter, flag in trainable.items():
        parameter.requires_grad_(flag)
    return curve


def tent(model: nn.Module, target: Target) -> list[Epoch]:
    """TENT: the trained normalisation layers' affine parameters trained to lower the predictions' entropy on
    the target; the statistics then fixed by AdaBN. Returns the curve (val_loss: the target's mean entropy)."""
    layers = [layer for layer in trainable_norms(model, NORMS) if getattr(layer, "weight", None) is not None]
    parameters = [parameter for layer in layers for parameter in layer.parameters(recurse=False)]
    return _train(model, parameters, ENTROPY, target, target)


def confident(scores: Any, threshold: float) -> tuple[list[int], list[int]]:
    """(the items whose top probability in `scores` reaches `threshold`, their predicted classes)."""
    top = scores.max(axis=1)
    kept = [index for index, value in enumerate(top.tolist()) if value >= threshold]
    return kept, [int(scores[index].argmax()) for index in kept]


def pseudo(model: nn.Module, target: Target, labelled: Dataset) -> list[Epoch]:
    """Self-training: the parameters that train (`requires_grad`: the run's head and opened stages) trained
    with cross-entropy on `labelled`, the target items the run was sure of labelled with its predictions
    (`confident`); the statistics of the BatchNorms that train then re-estimated on the whole target. Returns
    the curve (val_loss, val_accuracy: against the pseudo-labels, so no measure of accuracy)."""
    trained_on = dataclasses.replace(target, dataset=labelled)
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    return _train(model, parameters, CLASSIFICATION, target, trained_on)
