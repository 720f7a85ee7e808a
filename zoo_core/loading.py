"""`zoo_core.load`: a model's backbone, built by its plugin from verified weights (or random ones)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo_core.download import download
from zoo_core.plugins import build_backbone
from zoo_core.sources import default_catalogue
from zoo_core.specs import ModelSpec

if TYPE_CHECKING:
    from zoo_core.backbone import Backbone

__all__ = ["load"]


def load(model: str | ModelSpec, *, pretrained: bool = True, offline: bool | None = None) -> Backbone:
    """The model's `Backbone`: pretrained weights downloaded and verified, or random ones."""
    spec = model if isinstance(model, ModelSpec) else default_catalogue().get(model)
    weights = download(spec, offline=offline) if pretrained else None
    return build_backbone(spec, weights)  # type: ignore[return-value]
