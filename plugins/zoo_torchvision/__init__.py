"""zoo's torchvision plugin: AlexNet, the classic that timm does not carry, with torchvision's weights.

Its model is an entry of the built-in ``registry.toml`` with ``plugin = "torchvision"``.
"""

from __future__ import annotations

from pathlib import Path

from zoo_core import ModelSpec, Requirement, hookimpl

INSTALL = "pip install 'zoo-tl[vision]'"


@hookimpl
def plugin_requirements() -> list[Requirement]:
    return [Requirement(module, INSTALL) for module in ("torch", "torchvision")]


@hookimpl
def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object | None:
    if spec.plugin != "torchvision":
        return None
    from zoo_torchvision.alexnet import AlexNetBackbone

    return AlexNetBackbone(spec, weights_dir)
