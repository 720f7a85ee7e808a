"""zoo's timm plugin: the ImageNet backbones of timm (ResNet, VGG, Inception, MobileNet and ~1,800 tags).

The catalogue is static data (`catalogue.json`, written by ``scripts/generate_timm_catalogue.py``), so
finding a model never imports timm or torch. Checking images is zoo's own (`zoo_core.image_check`),
for every image model: this plugin adds nothing to it.
"""

from __future__ import annotations

from pathlib import Path

from zoo_core import ModelSpec, Requirement, hookimpl

CATALOGUE = Path(__file__).with_name("catalogue.json")
INSTALL = "pip install 'zoo-tl[vision]'"


@hookimpl
def plugin_requirements() -> list[Requirement]:
    return [Requirement(module, INSTALL) for module in ("torch", "torchvision", "timm", "safetensors", "PIL")]


@hookimpl
def register_models() -> list[Path]:
    return [CATALOGUE]


@hookimpl
def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object | None:
    if spec.plugin != "timm":
        return None
    from zoo_timm.backbone import TimmBackbone

    return TimmBackbone(spec, weights_dir)
