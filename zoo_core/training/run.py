"""`zoo_core.finetune` and `zoo_core.pretrain`: a whole transfer-learning run, from data to artifacts.

A run folder holds everything export needs and everything needed to reproduce it: ``model.safetensors``
(the best epoch's backbone + head), ``labels.json``, ``preprocessing.json``, ``metrics.json``,
``manifest.json`` (model, revision, file sha256s, absolute data paths and fingerprints, every option,
package versions), ``curves.png`` with a scratch baseline, and ``last.pt`` to resume an interrupted run.
It is written beside its final place and moved there whole, one run at a time (`runfolder`).

Runs are reproducible: every generator is seeded, and torch's CPU threads are pinned to ``--threads``
(default 1) while training, because CPU kernels split their sums by thread — BatchNorm over 1x1 maps,
MKL's matrix products — so the same seed on another thread count gives other bits.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import itertools
import json
import math
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo_core._version import __version__
from zoo_core.catalogue import Catalogue
from zoo_core.compatibility import check
from zoo_core.download import fetch
from zoo_core.errors import DataError, RunOptionError
from zoo_core.loading import load
from zoo_core.settings import Settings
from zoo_core.sources import default_catalogue
from zoo_core.specs import ModelSpec
from zoo_core.training.data import Dataset, load_dataset, stratified_split
from zoo_core.training.features import batches, cached_features
from zoo_core.training.loop import Epoch, train_epochs
from zoo_core.training.model import TransferModel, make_head
from zoo_core.training.report import plot_curves, summarise
from zoo_core.training.runfolder import CHECKPOINT, staged_run

__all__ = [
    "FinetuneOptions",
    "finetune",
    "finetune_from_manifest",
    "pinned_threads",
    "seed_everything",
    "training_sets",
    "usable_transform",
    "write_json",
]

STRATEGIES = ("features", "finetune", "full")
HEADS = ("linear", "mlp", "logreg")
BACKBONE_LR_SCALE = 0.1  # discriminative rates: pretrained layers learn 10x slower than the new head
PACKAGES = ("torch", "timm", "transformers", "numpy", "scikit-learn", "zoo-tl")
EXTENDABLE = ("epochs", "patience")  # options a resumed run may change: it may go on for longer


def _refuse(option: str, value: object, rule: str) -> RunOptionError:
    return RunOptionError(f"--{option} {value}: {rule}")


@dataclass(frozen=True)
class FinetuneOptions:
    """Every choice a run makes; all of it goes into manifest.json. Impossible values raise `RunOptionError`."""

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
    threads: int = 1  # torch CPU threads while training: the same number gives the same bits on any machine

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise _refuse("strategy", self.strategy, f"not one of {', '.join(STRATEGIES)}")
        if self.head not in HEADS:
            raise _refuse("head", self.head, f"not one of {', '.join(HEADS)}")
        if self.head == "logreg" and self.strategy != "features":
            raise RunOptionError(
                f"--head logreg cannot go with --strategy {self.strategy}: scikit-learn fits it on frozen features; "
                "use --strategy features, or --head linear or mlp"
            )
        counts = {"epochs": self.epochs, "batch-size": self.batch_size, "patience": self.patience}
        for option, value in {**counts, "threads": self.threads}.items():
            if value < 1:
                raise _refuse(option, value, "must be at least 1")
        for option, value in (("unfreeze", self.unfreeze), ("drop-last", self.drop_last)):
            if value < 0:
                raise _refuse(option, value, "must be 0 or more")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise _refuse("lr", self.lr, "must be a positive number, e.g. 1e-3")
        if not 0 < self.val_split < 1:
            raise _refuse(
                "val-split", self.val_split, "must be between 0 and 1: the share of each class held out, e.g. 0.2"
            )
        if self.baseline not in (None, "scratch"):
            raise _refuse("baseline", self.baseline, "the one baseline is scratch")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """torch's CPU thread count set to `threads` for the block, and the caller's back afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def write_json(path: Path, data: Any) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    partial.replace(path)


def usable_transform(spec: ModelSpec, data: Path) -> Any:
    """The preprocessing `zoo check` builds for `data`; its first error, if any, stops the run here."""
    report = check(spec, data)
    errors = [finding for finding in report.findings if finding.level == "error"]
    if errors:
        raise DataError(
            f"{data} is not usable with {spec.name}: {errors[0].message}; see `zoo check {spec.name} {data}`"
        )
    return report.transform


def training_sets(data: Path, kind: str, options: FinetuneOptions) -> tuple[Dataset, Dataset]:
    """Training and validation sets: at least two classes, each on both sides of a split."""
    dataset = load_dataset(data, kind)
    if len(dataset.classes) < 2:
        found = ", ".join(repr(name) for name in dataset.classes) or "none"
        raise DataError(
            f"{data}: a classifier needs at least two classes, found {len(dataset.classes)} ({found}); add one "
            f"{'subfolder' if kind == 'image' else 'label'} per class"
        )
    if options.val:
        return dataset, load_dataset(Path(options.val), kind, dataset.classes)
    train, val = stratified_split(dataset, options.val_split, options.seed)
    counts, held_out, kept = Counter(dataset.labels), set(val.labels), set(train.labels)
    for label, name in enumerate(dataset.classes):
        count = counts[label]
        if label not in held_out:  # stratified_split holds out nothing of a class with one item
            raise DataError(
                f"{data}: class '{name}' has {count} item, which cannot be split into training and validation; "
                "add items (2 or more per class), or give a validation set with --val"
            )
        if label not in kept:
            raise DataError(
                f"--val-split {options.val_split} leaves class '{name}' of {data} ({count} items) nothing to train "
                "on; lower --val-split, add items, or give a validation set with --val"
            )
    return train, val


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


@dataclass(frozen=True)
class _Job:
    """What a training needs besides the network: data, preprocessing, options, where to checkpoint."""

    train: Dataset
    val: Dataset
    transform: Any
    options: FinetuneOptions
    checkpoint: Path | None  # None: none kept (the scratch baseline; processes other than the first)
    resume: bool
    identity: dict[str, Any]  # what the checkpoint belongs to: --resume refuses another run's


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


def _features_run(backbone: Any, spec: ModelSpec, weights: str, job: _Job) -> tuple[nn.Module, list[Epoch]]:
    options, train, val = job.options, job.train, job.val
    cache = Settings.from_env().home / "features"
    key = [spec.name, weights, f"drop_last={options.drop_last}", f"threads={options.threads}"]
    train_x = cached_features(backbone, key, train, job.transform, options.batch_size, cache)
    val_x = cached_features(backbone, key, val, job.transform, options.batch_size, cache)
    classes = len(train.classes)
    val_y = torch.tensor(val.labels)
    if options.head == "logreg":
        linear = _logreg_head(train_x, train.labels, classes, options.seed)
        with torch.no_grad():
            logits = linear(torch.tensor(val_x))
        loss, accuracy = nn.functional.cross_entropy(logits, val_y), (logits.argmax(1) == val_y).float().mean()
        return linear, [{"epoch": 1, "train_loss": math.nan, "val_loss": float(loss), "val_accuracy": float(accuracy)}]
    head = make_head(options.head, train_x.shape[1], classes)
    features, labels = torch.tensor(train_x), torch.tensor(train.labels)

    def train_batches(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(options.seed + epoch))
        chunks = [order[start : start + options.batch_size] for start in range(0, len(order), options.batch_size)]
        return [(features[chunk], labels[chunk]) for chunk in chunks]

    optimizer = torch.optim.AdamW(head.parameters(), lr=options.lr)
    curve, best = train_epochs(
        head,
        optimizer,
        None,
        train_batches,
        lambda: [(torch.tensor(val_x), val_y)],
        options.epochs,
        options.patience,
        job.checkpoint,
        job.resume,
        options.seed,
        identity=job.identity,
    )
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


def _network_run(model: TransferModel, job: _Job, strategy: str, pretrained: bool = True) -> list[Epoch]:
    rank, world = distributed()
    options, train = job.options, job.train
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
        return itertools.chain.from_iterable(batches(train, job.transform, len(part), part) for part in mine)

    trained: nn.Module = model
    if world > 1:  # gradients are averaged over the processes: the same step as one process on the whole batch
        trained = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    curve, best = train_epochs(
        trained,
        optimizer,
        warmup if strategy == "full" else None,
        train_batches,
        lambda: batches(job.val, job.transform, options.batch_size),
        options.epochs,
        options.patience,
        job.checkpoint,
        job.resume,
        options.seed,
        quiet=rank != 0 or not sys.stderr.isatty(),
        identity=job.identity,
    )
    model.load_state_dict(best)
    return curve


def _identity(spec: ModelSpec, weights: str, train: Dataset, val: Dataset, options: FinetuneOptions) -> dict[str, Any]:
    """What a checkpoint belongs to, by the name a refusal shows: options first (a different seed or split
    also changes the data fingerprints), then the model, its weights and the data."""
    kept = {key: value for key, value in dataclasses.asdict(options).items() if key not in EXTENDABLE}
    return {
        **{f"--{key.replace('_', '-')}": value for key, value in kept.items()},
        "model": spec.name,
        "weights": weights,
        "data": train.fingerprint(),
        "validation data": val.fingerprint(),
    }


def _run_folder(out: Path, resume: bool, rank: int) -> AbstractContextManager[Path | None]:
    """The staging folder to write into; under torchrun, only the first process has one."""
    return staged_run(out, resume=resume) if rank == 0 else nullcontext()


def finetune(
    model: str | ModelSpec,
    data: Path,
    out: Path,
    options: FinetuneOptions = FinetuneOptions(),
    resume: bool = False,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """Adapt a pretrained model to a labelled dataset and write the run folder `out`; returns the metrics.

    `model` is a spec, or a name looked up in `catalogue` (default: the environment's). Data and options
    are checked before anything is written; a second run into `out` meanwhile raises `RunFolderBusyError`.
    """
    spec = model if isinstance(model, ModelSpec) else (catalogue or default_catalogue()).get(model)
    data = data.resolve()  # recorded absolute: the run can be exported or reproduced from anywhere
    options = dataclasses.replace(options, val=str(Path(options.val).resolve()) if options.val else None)
    transform = usable_transform(spec, data)
    train, val = training_sets(data, spec.modality if spec.modality == "image" else "text", options)
    rank, world = distributed()
    if resume and world > 1:  # only process 0 keeps a checkpoint: the others would start again from epoch 1
        raise RunOptionError("--resume works with one process only: resume without torchrun, or start afresh")
    with _run_folder(out, resume, rank) as staging, pinned_threads(options.threads):
        seed_everything(options.seed)
        record = fetch(spec)
        weights = " ".join(f"{file.name}={file.sha256}" for file in sorted(record.files, key=lambda file: file.name))
        checkpoint = staging / CHECKPOINT if staging is not None else None
        job = _Job(train, val, transform, options, checkpoint, resume, _identity(spec, weights, train, val, options))
        backbone = load(spec)
        if options.drop_last:
            backbone.drop_last(options.drop_last)
        if options.strategy == "features":
            head, curve = _features_run(backbone, spec, weights, job)
            trained = TransferModel(backbone, head)
        else:
            trained = TransferModel(backbone, make_head(options.head, backbone.feature_dim, len(train.classes)))
            curve = _network_run(trained, job, options.strategy)
        metrics: dict[str, Any] = {
            "model": spec.name,
            "strategy": options.strategy,
            "classes": train.classes,
            "train_size": len(train.items),
            "val_size": len(val.items),
            "transfer": summarise(curve),
        }
        scratch_curve = None
        if options.baseline == "scratch":
            seed_everything(options.seed)
            scratch_curve = _scratch_curve(spec, backbone, dataclasses.replace(job, checkpoint=None, resume=False))
            metrics["scratch"] = summarise(scratch_curve)
            metrics["transfer_minus_scratch"] = metrics["transfer"]["final"] - metrics["scratch"]["final"]
        if staging is not None:  # under torchrun, one process writes the run folder
            if scratch_curve is not None:
                curves = {f"transfer ({options.strategy})": curve, "scratch": scratch_curve}
                plot_curves(curves, staging / "curves.png", f"{spec.name} on {data.name}")
            _write_artifacts(staging, spec, record, trained, job, data, metrics)
    return metrics


def _scratch_curve(spec: ModelSpec, backbone: Any, job: _Job) -> list[Epoch]:
    """The same model without pretraining, same budget: random weights trained end to end, or, for word
    vectors, random vectors under the same head."""
    options = job.options
    if hasattr(backbone, "scratch_copy"):
        random_vectors = backbone.scratch_copy(options.seed)
        scratch_spec = dataclasses.replace(spec, name=f"{spec.name}.random")
        _, curve = _features_run(random_vectors, scratch_spec, f"random seed={options.seed}", job)
        return curve
    scratch_backbone = load(spec, pretrained=False)
    if options.drop_last:
        scratch_backbone.drop_last(options.drop_last)
    scratch = TransferModel(scratch_backbone, make_head("linear", scratch_backbone.feature_dim, len(job.train.classes)))
    return _network_run(scratch, job, "full", pretrained=False)


def _write_artifacts(
    out: Path, spec: ModelSpec, record: Any, trained: TransferModel, job: _Job, data: Path, metrics: dict[str, Any]
) -> None:
    from safetensors.torch import save_model

    save_model(trained, str(out / "model.safetensors"))
    write_json(out / "labels.json", job.train.classes)
    write_json(out / "preprocessing.json", {"input": dataclasses.asdict(spec.input), "modality": spec.modality})
    write_json(out / "metrics.json", metrics)
    manifest = {
        "zoo": __version__,
        "model": spec.name,
        "revision": record.commit,
        "files": {file.name: file.sha256 for file in record.files},
        "data": str(data),
        "data_fingerprint": job.train.fingerprint(),
        "val_fingerprint": job.val.fingerprint(),
        "options": dataclasses.asdict(job.options),
        "packages": _versions(),
    }
    write_json(out / "manifest.json", manifest)


def finetune_from_manifest(
    manifest: Path, out: Path, catalogue: Catalogue | None = None, resume: bool = False
) -> dict[str, Any]:
    """Run again what a manifest describes (same model, data and options) into `out`; the model is looked up
    in `catalogue` (the CLI passes the one its ``--registry`` options build)."""
    try:
        saved = json.loads(manifest.read_text(encoding="utf-8"))
        model, data, options = saved["model"], Path(saved["data"]), FinetuneOptions(**saved["options"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        if isinstance(error, RunOptionError):
            raise
        raise RunOptionError(
            f"--from-manifest {manifest}: not a run's manifest.json ({type(error).__name__}: {error}); "
            "give the manifest.json of a run folder"
        ) from None
    return finetune(model, data, out, options, resume=resume, catalogue=catalogue)
