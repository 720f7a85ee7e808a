"""zoo's timm plugin: the ImageNet backbones of timm (ResNet, VGG, Inception, MobileNet and ~1,800 tags).

The catalogue is static data (`catalogue.json`, written by ``scripts/generate_timm_catalogue.py``), so
finding a model never imports timm or torch.
"""

from __future__ import annotations

from pathlib import Path

from zoo_core import CheckReport, ModelSpec, Requirement, hookimpl

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


@hookimpl
def check_input(spec: ModelSpec, data: object) -> CheckReport | None:
    """Images for any image model (timm's, Caffe's, a user's): files and folders, or in-memory batches."""
    if spec.modality != "image":
        return None
    import dataclasses

    from zoo_timm.imagecheck import check_array, check_folder
    from zoo_timm.transform import build_transform

    report = check_folder(spec, Path(data)) if isinstance(data, str | Path) else check_array(spec, data)
    return dataclasses.replace(report, transform=build_transform(spec.input))  # type: ignore[arg-type]
