"""The object `zoo_core.load` returns: a pretrained network shaped for transfer learning.

A `Backbone` is a `torch.nn.Module` with a feature extractor, a replaceable head, and an ordered list of
layer groups — stem, stages, head — so that the usual moves are one call each::

    backbone = zoo_core.load("resnet50")
    backbone.reset_head(10)              # a new classifier for 10 classes
    backbone.freeze(all_but_last=2)      # train the head and the last stage only
    backbone.drop_last(1)                # or: reuse every stage but the last, features from the one before

Plugins subclass it (the core never imports torch unless a backbone is loaded); this base class owns
freezing, which works the same for every architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from zoo_core.specs import ModelSpec

__all__ = ["Backbone", "LayerGroup"]

# what every plugin's Backbone defines: the base class raises NotImplementedError for each (checked at construction)
PROVIDED = ("feature_dim", "features", "reset_head", "layer_groups", "drop_last")


@dataclass(frozen=True, eq=False)
class LayerGroup:
    """Consecutive layers that are frozen or trained together."""

    name: str  # "stem", "layer3", "blocks.4", "head", …
    modules: tuple[nn.Module, ...]

    def parameters(self) -> list[nn.Parameter]:
        return [parameter for module in self.modules for parameter in module.parameters(recurse=True)]


class Backbone(nn.Module):
    """A network with `features`, a head (`forward` gives logits), and `layer_groups`, head last."""

    def __init__(self, spec: ModelSpec) -> None:
        missing = [name for name in PROVIDED if getattr(type(self), name) is getattr(Backbone, name)]
        if missing:
            raise TypeError(
                f"{type(self).__qualname__} does not define {', '.join(missing)}: a Backbone subclass provides "
                f"{', '.join(PROVIDED)} (see docs/plugins.md)"
            )
        super().__init__()
        self.spec = spec
        self._frozen: tuple[LayerGroup, ...] = ()
        # the checkpoint's classifier keys that did not fit and were dropped when the weights were loaded: the
        # classifier is then freshly initialised, and its outputs are no answer until it is trained
        self.dropped_classifier: tuple[str, ...] = ()

    # --- what a plugin provides ------------------------------------------------------------------------

    @property
    def feature_dim(self) -> int:
        """Width of `features(x)`: what a new head receives."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, pooled: shape (batch, feature_dim)."""
        raise NotImplementedError

    def reset_head(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for `num_classes` outputs."""
        raise NotImplementedError

    def layer_groups(self) -> list[LayerGroup]:
        """The network's layers in order, grouped: stem, stages, then the head."""
        raise NotImplementedError

    def drop_last(self, n: int) -> None:
        """Reuse every layer group but the last `n` stages: features then come from the stage before."""
        raise NotImplementedError

    def prepare_export(self) -> None:
        """Switch to the layers ONNX export and onnxruntime's optimisers handle best; none by default."""

    # --- shared by every backbone ----------------------------------------------------------------------

    def freeze(self, all_but_last: int = 1) -> list[str]:
        """Freeze every layer group except the last `all_but_last` (the head counts: 1 = head only).

        Frozen groups get ``requires_grad=False`` and stay in eval mode even under ``train()``, so their
        BatchNorm statistics do not drift. Returns the names of the groups left trainable.
        """
        groups = self.layer_groups()
        if not 0 <= all_but_last <= len(groups):
            raise ValueError(f"all_but_last must be between 0 and {len(groups)} (the number of groups)")
        cut = len(groups) - all_but_last
        for index, group in enumerate(groups):
            for parameter in group.parameters():
                parameter.requires_grad_(index >= cut)
        self._frozen = tuple(groups[:cut])
        self.train(self.training)
        return [group.name for group in groups[cut:]]

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        for group in self._frozen:
            for module in group.modules:
                module.eval()
        return self
