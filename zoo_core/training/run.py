"""`zoo_core.finetune` and `zoo_core.pretrain`: a whole transfer-learning run, from data to artifacts.

A run folder holds everything export needs and everything needed to reproduce it: ``model.safetensors``
(the best epoch's backbone + head), ``labels.json``, ``preprocessing.json``, ``metrics.json``,
``manifest.json`` (model, revision, file sha256s, data fingerprint, every option, package versions),
``curves.png`` with a scratch baseline, and ``last.pt`` to resume an interrupted run.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import itertools
import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo_core._version import __version__
from zoo_core.compatibility import check
from zoo_core.download import fetch
from zoo_core.errors import DataError
from zoo_core.loading import load
from zoo_core.settings import Settings
from zoo_core.sources import default_catalogue
from zoo_core.specs import ModelSpec
from zoo_core.training.data import Dataset, load_dataset, stratified_split
from zoo_core.training.features import batches, cached_features
from zoo_core.training.loop import Epoch, train_epochs
from zoo_core.training.model import TransferModel, make_head
from zoo_core.training.report import plot_curves, summarise

__all__ = ["FinetuneOptions", "finetune", "finetune_from_manifest", "seed_everything", "write_json"]

STRATEGIES = ("features", "finetune", "full")
HEADS = ("linear", "mlp", "logreg")
BACKBONE_LR_SCALE = 0.1  # discriminative rates: pretrained layers learn 10x slower than the new head
PACKAGES = ("torch", "timm", "transformers", "numpy", "scikit-learn", "zoo-tl")


@dataclass(frozen=True)
class FinetuneOptions:
    """Every choice a run makes; all of it goes into manifest.json."""

    strategy: str = "features"  # features (frozen backbone) | finetune (last N groups) | full
    head: str = "linear"  # linear | mlp | logreg (features only)
    unfreeze: int = 1  # finetune: backbone stages trained under the head
    drop_last: int = 0  # reuse all stages but the last N
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    val_split: float = 0.2
    val: str | None = None  # a separate validation folder or file instead of a split
    seed: int = 0
    patience: int = 3  # epochs without a better validation loss before stopping
    baseline: str | None = None  # "scratch": the same architecture from random weights, same budget


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def write_json(path: Path, data: Any) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    partial.replace(path)


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _logreg_head(train_x: np.ndarray, train_y: list[int], classes: int, seed: int) -> nn.Linear:
    """scikit-learn's LogisticRegression, turned into the equivalent linear layer."""
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(max_iter=2000, random_state=seed).fit(train_x, train_y)
    weight, bias = np.asarray(fitted.coef_), np.asarray(fitted.intercept_)
    if classes == 2:  # sklearn keeps one row for two classes: p(1) = sigmoid(w x + b) = softmax([0, w x + b])
        weight, bias = np.vstack([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
    head = nn.Linear(train_x.shape[1], classes)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return head


def _features_run(backbone: Any, spec: ModelSpec, weights: str, train: Dataset, val: Dataset, transform: Any,
                  options: FinetuneOptions, out: Path, resume: bool) -> tuple[nn.Module, list[Epoch]]:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    cache = Settings.from_env().home / "features"
    key = [spec.name, weights, f"drop_last={options.drop_last}"]
    train_x = cached_features(backbone, key, train, transform, options.batch_size, cache)
    val_x = cached_features(backbone, key, val, transform, options.batch_size, cache)
    classes = len(train.classes)
    val_y = torch.tensor(val.labels)
    if options.head == "logreg":
        linear = _logreg_head(train_x, train.labels, classes, options.seed)
        with torch.no_grad():
            logits = linear(torch.tensor(val_x))
        curve = [{"epoch": 1, "train_loss": float("nan"), "val_loss": float(nn.functional.cross_entropy(logits, val_y)),
                  "val_accuracy": float((logits.argmax(1) == val_y).float().mean())}]  # fmt: skip
        return linear, curve
    head = make_head(options.head, train_x.shape[1], classes)
    features, labels = torch.tensor(train_x), torch.tensor(train.labels)

    def train_batches(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(options.seed + epoch))
        return [(features[order[i : i + options.batch_size]], labels[order[i : i + options.batch_size]])
                for i in range(0, len(order), options.batch_size)]  # fmt: skip

    optimizer = torch.optim.AdamW(head.parameters(), lr=options.lr)
    curve, best = train_epochs(head, optimizer, None, train_batches, lambda: [(torch.tensor(val_x), val_y)],
                               options.epochs, options.patience, out / "last.pt", resume, options.seed)  # fmt: skip
    head.load_state_dict(best)
    return head, curve


def distributed() -> tuple[int, int]:
    """(rank, world size): under torchrun, the gloo process group is set up on first use."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def _network_run(
    model: TransferModel,
    train: Dataset,
    val: Dataset,
    transform: Any,
    options: FinetuneOptions,
    strategy: str,
    checkpoint: Path | None,
    resume: bool,
    pretrained: bool = True,
) -> list[Epoch]:
    rank, world = distributed()
    backbone = model.backbone
    groups = len(backbone.layer_groups())
    backbone.freeze(all_but_last=groups if strategy == "full" else min(options.unfreeze + 1, groups))
    trainable = [p for p in backbone.parameters() if p.requires_grad]
    rate = options.lr * (BACKBONE_LR_SCALE if pretrained else 1.0)  # pretrained layers move slower than the head
    groups_and_rates: list[dict[str, Any]] = [{"params": trainable, "lr": rate}, {"params": model.head.parameters()}]
    optimizer = torch.optim.AdamW(groups_and_rates, lr=options.lr)
    steps = max(1, -(-len(train.items) // options.batch_size))
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / steps))  # one epoch

    def train_batches(epoch: int) -> Any:
        order = torch.randperm(len(train.items), generator=torch.Generator().manual_seed(options.seed + epoch)).tolist()
        chunks = [order[start : start + options.batch_size] for start in range(0, len(order), options.batch_size)]
        # every process takes its share of each global batch; a batch that cannot give every process two
        # samples (BatchNorm needs two) is skipped by all of them
        mine = [chunk[rank::world] for chunk in chunks if len(chunk) >= 2 * world]
        return itertools.chain.from_iterable(batches(train, transform, len(part), part) for part in mine)

    trained: nn.Module = model
    if world > 1:  # gradients are averaged over the processes: the same step as one process on the whole batch
        trained = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    curve, best = train_epochs(trained, optimizer, warmup if strategy == "full" else None, train_batches,
                               lambda: batches(val, transform, options.batch_size), options.epochs,
                               options.patience, checkpoint if rank == 0 else None, resume, options.seed,
                               quiet=rank != 0 or not sys.stderr.isatty())  # fmt: skip
    model.load_state_dict(best)
    return curve


def finetune(model: str | ModelSpec, data: Path, out: Path, options: FinetuneOptions = FinetuneOptions(),
             resume: bool = False) -> dict[str, Any]:  # fmt: skip
    """Adapt a pretrained model to a labelled dataset and write the run folder; returns the metrics."""
    if options.strategy not in STRATEGIES or options.head not in HEADS:
        raise ValueError(f"strategy must be one of {STRATEGIES} and head one of {HEADS}")
    spec = model if isinstance(model, ModelSpec) else default_catalogue().get(model)
    report = check(spec, data)
    errors = [finding for finding in report.findings if finding.level == "error"]
    if errors:
        raise DataError(
            f"{data} is not usable with {spec.name}: {errors[0].message}; see `zoo check {spec.name} {data}`"
        )
    dataset = load_dataset(data, spec.modality if spec.modality == "image" else "text")
    if options.val:
        train, val = dataset, load_dataset(Path(options.val), dataset.kind, dataset.classes)
    else:
        train, val = stratified_split(dataset, options.val_split, options.seed)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(options.seed)
    record = fetch(spec)
    backbone = load(spec)
    if options.drop_last:
        backbone.drop_last(options.drop_last)
    transform = report.transform
    if options.strategy == "features":
        weights = " ".join(f"{file.name}={file.sha256}" for file in sorted(record.files, key=lambda file: file.name))
        head, curve = _features_run(backbone, spec, weights, train, val, transform, options, out, resume)
        trained = TransferModel(backbone, head)
    else:
        trained = TransferModel(backbone, make_head(options.head, backbone.feature_dim, len(train.classes)))
        curve = _network_run(trained, train, val, transform, options, options.strategy, out / "last.pt", resume)
    metrics: dict[str, Any] = {
        "model": spec.name,
        "strategy": options.strategy,
        "classes": train.classes,
        "train_size": len(train.items),
        "val_size": len(val.items),
        "transfer": summarise(curve),
    }
    if options.baseline == "scratch":
        seed_everything(options.seed)
        scratch_curve = _scratch_curve(spec, backbone, train, val, transform, options, out)
        metrics["scratch"] = summarise(scratch_curve)
        metrics["transfer_minus_scratch"] = metrics["transfer"]["final"] - metrics["scratch"]["final"]
        plot_curves({f"transfer ({options.strategy})": curve, "scratch": scratch_curve}, out / "curves.png",
                    f"{spec.name} on {data.name}")  # fmt: skip
    if distributed()[0] == 0:  # under torchrun, one process writes the run folder
        _write_artifacts(out, spec, record, trained, train, val, data, options, metrics)
    return metrics


def _scratch_curve(spec: ModelSpec, backbone: Any, train: Dataset, val: Dataset, transform: Any,
                   options: FinetuneOptions, out: Path) -> list[Epoch]:  # fmt: skip
    """The same model without pretraining, same budget: random weights trained end to end, or, for word
    vectors, random vectors under the same head."""
    if hasattr(backbone, "scratch_copy"):
        random_vectors = backbone.scratch_copy(options.seed)
        scratch_spec = dataclasses.replace(spec, name=f"{spec.name}.random")
        _, curve = _features_run(
            random_vectors,
            scratch_spec,
            f"random seed={options.seed}",
            train,
            val,
            transform,
            options,
            out / "scratch",
            False,
        )
        return curve
    scratch_backbone = load(spec, pretrained=False)
    if options.drop_last:
        scratch_backbone.drop_last(options.drop_last)
    scratch = TransferModel(scratch_backbone, make_head("linear", scratch_backbone.feature_dim, len(train.classes)))
    return _network_run(scratch, train, val, transform, options, "full", None, False, pretrained=False)


def _write_artifacts(out: Path, spec: ModelSpec, record: Any, trained: TransferModel, train: Dataset, val: Dataset,
                     data: Path, options: FinetuneOptions, metrics: dict[str, Any]) -> None:  # fmt: skip
    from safetensors.torch import save_model

    save_model(trained, str(out / "model.safetensors"))
    write_json(out / "labels.json", train.classes)
    write_json(out / "preprocessing.json", {"input": dataclasses.asdict(spec.input), "modality": spec.modality})
    write_json(out / "metrics.json", metrics)
    write_json(out / "manifest.json", {
        "zoo": __version__, "model": spec.name, "revision": record.commit,
        "files": {file.name: file.sha256 for file in record.files},
        "data": str(data.resolve()), "data_fingerprint": train.fingerprint(), "val_fingerprint": val.fingerprint(),
        "options": dataclasses.asdict(options), "packages": _versions(),
    })  # fmt: skip


def finetune_from_manifest(manifest: Path, out: Path) -> dict[str, Any]:
    """Run again what a manifest describes (same model, data and options) into `out`."""
    saved = json.loads(manifest.read_text(encoding="utf-8"))
    return finetune(saved["model"], Path(saved["data"]), out, FinetuneOptions(**saved["options"]))
