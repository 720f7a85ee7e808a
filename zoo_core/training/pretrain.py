"""`zoo_core.pretrain`: develop a source model when no public pretrained model fits.

Trains an architecture from random weights on an abundant source task, saves its weights as safetensors
with a registry entry beside them, and adds that entry to the user's registry, so ``zoo finetune NAME``
starts from it like from any published model (its source is the local file, with its sha256).

The name must be new to the catalogue — neither a model's name nor an alias, in any case — or a source
model would take over that name for every command. ``replace=True`` (``--replace``) lets a pretraining
replace an entry of the user's own registry of exactly that name, and nothing else. The output folder is
written like a fine-tuning run's: locked, staged beside it, moved into place whole (`runfolder`), and
its data is split the same way: the source model's test accuracy is measured on a split that chose nothing.
It trains on ``--device`` at ``--precision`` fed by ``--workers`` as `zoo finetune` does (docs/gpu.md); the
device is resolved before anything is written, and the weights are saved from the CPU; metrics.json records
the device it trained on (``device``, as a finetune manifest does) and ``precision``.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from zoo_core.catalogue import Catalogue
from zoo_core.catalogue_sources import default_catalogue, reset_catalogue
from zoo_core.errors import ModelNameTakenError, RegistryWarning
from zoo_core.hashing import file_digest
from zoo_core.plugins import build_backbone
from zoo_core.registry import parse_spec
from zoo_core.settings import Settings
from zoo_core.training.data import Dataset
from zoo_core.training.device import (
    autocast,
    device_name,
    fitting_memory,
    module_device,
    on_device,
    resolve_device,
    to_device,
)
from zoo_core.training.features import Feeder, batches, chunks, quiet
from zoo_core.training.loop import train_epochs
from zoo_core.training.report import curve_gains
from zoo_core.training.run import (
    FinetuneOptions,
    pinned_threads,
    run_splits,
    seed_everything,
    usable_transform,
)
from zoo_core.training.runfolder import staged_run, write_json
from zoo_core.user_registry import add_to_user_registry, user_registry

__all__ = ["pretrain"]


def _check_name(name: str, catalogue: Catalogue, replace: bool) -> None:
    """Refuse a name the catalogue already resolves (a name or an alias, any case), unless `replace` and it is
    the user's own entry of exactly that name; warn when that entry also hides a model from another source."""
    if name not in catalogue:
        return
    taken = catalogue.get(name)
    registry = user_registry(Settings.from_env().home)
    same_name = taken.name.lower() == name.lower()
    held = f"'{name}' is {'the name' if same_name else 'an alias'} of model '{taken.name}' ({taken.origin})"
    ours = same_name and Path(taken.origin).resolve() == registry.resolve()
    if replace and not ours:
        raise ModelNameTakenError(
            f"--name {name} --replace: {held}; --replace only replaces an entry of your registry ({registry}) "
            "of that name: choose another --name"
        )
    if not (replace and taken.name == name):
        fix = f"to replace your entry, pass --name {taken.name} --replace; or " if ours else ""
        raise ModelNameTakenError(
            f"--name {name}: {held}; a model under that name would take it over everywhere: {fix}choose another --name"
        )
    overrides = " overrides the one from "
    hidden = [
        note.split(overrides, 1)[1]
        for note in catalogue.notes
        if note.startswith(f"model '{name}' from ") and overrides in note
    ]
    if hidden:
        warnings.warn(
            f"--name {name}: your entry in {registry} goes on shadowing the model '{name}' from {hidden[-1]}",
            RegistryWarning,
            stacklevel=3,
        )


def _accuracy(network: Any, test: Dataset, transform: Any, options: FinetuneOptions) -> float:
    """The share of `test` that `network` (in eval mode, where it is) classifies right."""
    import torch

    device = module_device(network)
    network.eval()
    feed = batches(test, transform, 64, workers=options.workers, pin_memory=device.type == "cuda")
    with torch.no_grad():
        predicted = []
        for inputs, _ in feed:
            with autocast(device, options.precision):
                predicted.append(network(to_device(inputs, device)).argmax(1).cpu())
    return float((torch.cat(predicted) == torch.tensor(test.labels)).float().mean())


def pretrain(
    arch: str,
    data: Path,
    out: Path,
    name: str,
    *,
    size: int = 32,
    channels: int = 3,
    options: FinetuneOptions | None = None,
    replace: bool = False,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """Train `arch` (a timm architecture) from scratch on `data`; register the result as model `name`.

    `catalogue` (default: the environment's) is where the name must be new, unless `replace`.
    """
    import torch
    from safetensors.torch import save_file

    options = options or FinetuneOptions(epochs=15, lr=3e-3)
    catalogue = catalogue or default_catalogue()
    _check_name(name, catalogue, replace)
    data = data.resolve()
    train, val, test = run_splits(data, "image", options, options.seed)
    known = [spec for spec in catalogue.select() if spec.arch == arch]
    entry = {
        "name": name,
        "plugin": "timm",
        "arch": arch,
        "family": known[0].family if known else arch,
        "task": "image-classification",
        "modality": "image",
        "description": f"{arch} trained from scratch by zoo pretrain on {data.name} ({len(train.classes)} classes)",
        "tags": ["source-model", "zoo-pretrain"],
        "source": {"url": (out / "model.safetensors").resolve().as_uri()},
        "input": {
            "channels": channels,
            "height": size,
            "width": size,
            "mean": [0.5] * channels,
            "std": [0.5] * channels,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
        },
        "output": {"num_classes": len(train.classes)},
    }
    spec = parse_spec(entry, "zoo pretrain")
    transform = usable_transform(spec, data)
    device = resolve_device(options.device, options.precision)  # refused before anything is written
    feeding: dict[str, Any] = {"workers": options.workers, "pin_memory": device.type == "cuda"}
    train_feed, val_feed = Feeder(train, transform, **feeding), Feeder(val, transform, **feeding)
    with staged_run(out) as staging, pinned_threads(options.threads):
        seed_everything(options.seed)
        network: Any = build_backbone(spec, None)
        with on_device(network, device), fitting_memory(device, options.batch_size):  # saved from the CPU
            optimizer = torch.optim.AdamW(network.parameters(), lr=options.lr)

            def train_batches(epoch: int) -> Any:
                order = torch.randperm(len(train.items), generator=torch.Generator().manual_seed(options.seed + epoch))
                return train_feed(chunks(order.tolist(), options.batch_size))

            curve, best = train_epochs(
                network,
                optimizer,
                None,
                train_batches,
                lambda: val_feed(chunks(list(range(len(val.items))), options.batch_size)),
                options.epochs,
                options.patience,
                seed=options.seed,
                quiet=quiet(),
                device=device,
                precision=options.precision,
            )
            network.network.load_state_dict({key.removeprefix("network."): value for key, value in best.items()})
            accuracy = _accuracy(network, test, transform, options)
        weights = staging / "model.safetensors"
        save_file({key: value.contiguous() for key, value in network.network.state_dict().items()}, str(weights))
        spec = dataclasses.replace(
            spec,
            sha256={"model.safetensors": file_digest(weights)},
            origin="",
            output=dataclasses.replace(spec.output, feature_dim=network.feature_dim),
        )
        sizes = {"train": len(train.items), "val": len(val.items), "test": len(test.items)}
        source = {**curve_gains(curve), "curve": curve, "test_accuracy": accuracy}
        metrics = {"model": name, "arch": arch, "classes": train.classes, "sizes": sizes, "source": source}
        metrics |= {"device": device_name(device), "precision": options.precision}  # where it trained, as a manifest
        write_json(staging / "metrics.json", metrics)
        write_json(staging / "spec.json", spec.to_entry())
    add_to_user_registry(Settings.from_env().home, spec)  # after the move: the entry names the final file
    reset_catalogue()
    return metrics
