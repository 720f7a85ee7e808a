"""`zoo_core.load`: a model's backbone, built by its plugin from verified weights (or random ones)."""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING

from zoo_core.catalogue_sources import default_catalogue
from zoo_core.download import download
from zoo_core.errors import PluginError
from zoo_core.plugins import build_backbone
from zoo_core.specs import ModelSpec

if TYPE_CHECKING:
    from zoo_core.backbone import Backbone

__all__ = ["load", "load_classifier"]


def load(model: str | ModelSpec, *, pretrained: bool = True, offline: bool | None = None) -> Backbone:
    """The model's `Backbone` in eval mode (call ``train()`` to train it): pretrained weights downloaded and
    verified, or random ones. A model that is no network (a word-vector table) comes as its plugin built it."""
    spec = model if isinstance(model, ModelSpec) else default_catalogue().get(model)
    weights = download(spec, offline=offline) if pretrained else None
    built = build_backbone(spec, weights)
    torch = sys.modules.get("torch")  # a network means torch is imported already; none means no network
    if torch is not None and isinstance(built, torch.nn.Module):
        built.eval()  # here, so no plugin has to: every loaded network is ready for inference alike
    return built  # type: ignore[return-value]


def load_classifier(spec: ModelSpec) -> Backbone:
    """The model's pretrained network with the classifier its checkpoint trained, for `zoo predict NAME` and
    `zoo export NAME`, which present its outputs as answers.

    A `PluginError` when that classifier did not fit the entry's output and was dropped at load: the network's
    classifier is then a random one, whose "answers" are noise. (The dropped-classifier warning is not shown:
    the error says it.) Fine-tuning loads with `load`, as it replaces the classifier anyway.
    """
    from zoo_core.weights import ClassifierDroppedWarning, name_a_few

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClassifierDroppedWarning)
        backbone = load(spec)
    if backbone.dropped_classifier:
        wanted = f"output.num_classes = {spec.output.num_classes}" if spec.output.num_classes else "output"
        raise PluginError(
            f"'{spec.name}': its classifier was not in the checkpoint (the one there, "
            f"{name_a_few(list(backbone.dropped_classifier))}, does not fit the entry's {wanted} and was dropped "
            "at load), so its outputs would come from a random classifier: fine-tune it (zoo finetune) first"
        )
    return backbone
