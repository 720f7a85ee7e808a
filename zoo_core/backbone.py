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

__all__ = ["Backbone", "LayerGroup", "new_head"]

# what every plugin's Backbone defines: the base class raises NotImplementedError for each (checked at construction)
PROVIDED = ("feature_dim", "features", "forward", "reset_head", "layer_groups", "drop_last")


@dataclass(frozen=True, eq=False)
class LayerGroup:
    """Consecutive layers that are frozen or trained together."""

    name: str  # "stem", "layer3", "blocks.4", "head", …
    modules: tuple[nn.Module, ...]

    def parameters(self) -> list[nn.Parameter]:
        return [parameter for module in self.modules for parameter in module.parameters(recurse=True)]


def new_head(features: int, classes: int) -> nn.Module:
    """The head `reset_head` and `drop_last` install: a fresh ``nn.Linear(features, classes)``, or for 0
    classes ``nn.Identity()``, which passes the features through (the network then has no classifier).

    One helper for every plugin, so each backbone's head is built, initialised and named alike.
    """
    if classes < 0:
        raise ValueError(f"a head needs 0 or more classes, not {classes}: 0 removes the classifier")
    return nn.Identity() if classes == 0 else nn.Linear(features, classes)


class Backbone(nn.Module):
    """A pretrained network shaped for transfer learning: features, a replaceable head, layer groups.

    A plugin's `build_backbone` returns an instance of a subclass, constructed with ``super().__init__(spec)``,
    which fails with a `TypeError` naming any of `feature_dim`, `features`, `forward`, `reset_head`,
    `layer_groups` and `drop_last` the subclass leaves out. zoo's commands use exactly these members:
    `features` and `feature_dim` (feature caches, heads), `forward` (prediction and export of a catalogue
    classifier), `reset_head` and `drop_last` (every run), `layer_groups` (freezing), and `prepare_export`
    (`zoo export`). `zoo_core.load` returns it in eval mode; no member changes train/eval mode (call
    ``train()`` to train; `freeze` keeps frozen groups in eval mode under it).
    """

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
        """Width of `features(x)`, what a new head receives; after `drop_last`, the width of the features the
        cut gives (a property)."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features of a batch, pooled: shape (batch, `feature_dim`). They do not depend on
        the head: `reset_head` never changes them."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The head applied to `features(x)`: (batch, classes) logits; after `reset_head(0)`, `features(x)`
        itself. A network loaded without a classifier (a sentence encoder) may refuse until `reset_head`."""
        raise NotImplementedError

    def reset_head(self, num_classes: int) -> None:
        """Replace the classifier: for ``num_classes >= 1`` a fresh ``nn.Linear(feature_dim, num_classes)``,
        so `forward` gives (batch, num_classes) logits; for 0 remove it, so `forward` gives `features(x)` —
        what zoo's runs do before putting their own head on the features, so a saved run holds no unused
        classifier. Build the head with `new_head`."""
        raise NotImplementedError

    def layer_groups(self) -> list[LayerGroup]:
        """Every layer in use, in forward order, grouped: the stem, each stage, then the head (last, possibly
        without parameters). Stages that `drop_last` removed are no longer listed."""
        raise NotImplementedError

    def drop_last(self, n: int) -> None:
        """Remove the last `n` of the stages still kept; `features` then come (pooled) from the stage before.

        Cumulative: ``drop_last(1)`` twice is ``drop_last(2)``. With K stages kept after the stem, `n` runs
        from 1 to K (K drops every stage but the stem); any other `n` raises ``ValueError("NAME has K stages
        after its stem: drop_last takes 1 to K")``. The dropped stages leave `layer_groups` (and the state
        dict), `feature_dim` becomes the width of the new features, and the head is a fresh
        ``nn.Linear(feature_dim, spec.output.num_classes or 1000)`` (`new_head`).
        """
        raise NotImplementedError

    def prepare_export(self) -> None:
        """Switch to the layers ONNX export and onnxruntime's optimisers handle best, without changing the
        outputs; none by default. `zoo export` calls it once, on the loaded model in eval mode, right before
        tracing; training never does."""

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
