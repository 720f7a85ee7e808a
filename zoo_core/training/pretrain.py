"""`zoo_core.pretrain`: develop a source model when no public pretrained model fits.

Trains an architecture from random weights on an abundant source task, saves its weights as safetensors
with a registry entry beside them, and adds that entry to the user's registry, so ``zoo finetune NAME``
starts from it like from any published model (its source is the local file, with its sha256).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from zoo_core.compatibility import check
from zoo_core.plugins import build_backbone
from zoo_core.registry import parse_spec
from zoo_core.settings import Settings
from zoo_core.sources import default_catalogue, reset_catalogue
from zoo_core.training.data import load_dataset, stratified_split
from zoo_core.training.features import batches
from zoo_core.training.loop import train_epochs
from zoo_core.training.report import summarise
from zoo_core.training.run import FinetuneOptions, seed_everything, write_json
from zoo_core.user_registry import add_to_user_registry

__all__ = ["pretrain"]


def pretrain(arch: str, data: Path, out: Path, name: str, *, size: int = 32, channels: int = 3,
             options: FinetuneOptions | None = None) -> dict[str, Any]:  # fmt: skip
    """Train `arch` (a timm architecture) from scratch on `data`; register the result as model `name`."""
    import torch

    options = options or FinetuneOptions(epochs=15, lr=3e-3)
    from safetensors.torch import save_file

    dataset = load_dataset(data, "image")
    known = [spec for spec in default_catalogue().select() if spec.arch == arch]
    entry = {
        "name": name, "plugin": "timm", "arch": arch, "family": known[0].family if known else arch,
        "task": "image-classification", "modality": "image",
        "description": f"{arch} trained from scratch by zoo pretrain on {data.name} ({len(dataset.classes)} classes)",
        "tags": ["source-model", "zoo-pretrain"],
        "source": {"url": (out / "model.safetensors").resolve().as_uri()},
        "input": {"channels": channels, "height": size, "width": size, "mean": [0.5] * channels,
                  "std": [0.5] * channels, "interpolation": "bilinear", "crop_pct": 1.0},
        "output": {"num_classes": len(dataset.classes)},
    }  # fmt: skip
    spec = parse_spec(entry, "zoo pretrain")
    transform = check(spec, data).transform
    train, val = stratified_split(dataset, options.val_split, options.seed)
    seed_everything(options.seed)
    network: Any = build_backbone(spec, None)
    optimizer = torch.optim.AdamW(network.parameters(), lr=options.lr)

    def train_batches(epoch: int) -> Any:
        order = torch.randperm(len(train.items), generator=torch.Generator().manual_seed(options.seed + epoch))
        return batches(train, transform, options.batch_size, order.tolist())

    curve, best = train_epochs(network, optimizer, None, train_batches,
                               lambda: batches(val, transform, options.batch_size), options.epochs,
                               options.patience, None, False, options.seed)  # fmt: skip
    network.network.load_state_dict({key.removeprefix("network."): value for key, value in best.items()})
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "model.safetensors"
    save_file({key: value.contiguous() for key, value in network.network.state_dict().items()}, str(weights))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    spec = dataclasses.replace(spec, sha256={"model.safetensors": digest}, origin="",
                               output=dataclasses.replace(spec.output, feature_dim=network.feature_dim))  # fmt: skip
    add_to_user_registry(Settings.from_env().home, spec)
    reset_catalogue()
    metrics = {"model": name, "arch": arch, "classes": dataset.classes, "source": summarise(curve)}
    write_json(out / "metrics.json", metrics)
    write_json(out / "spec.json", spec.to_entry())
    return metrics
