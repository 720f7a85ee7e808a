"""How a run trains, for one seed: a head on frozen features, or a network trained end to end (some or all of
its stages), and the baselines trained beside it on the same splits.

Every method returns a `Trained`: its learning curve on the validation split (None for the baselines that fit
in one go) and its class probabilities on the validation and test splits, for the saved model — the epoch
with the best validation loss, never the last.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo_core.specs import ModelSpec
from zoo_core.training.data import Dataset
from zoo_core.training.device import CPU, fitting_memory, kernels, on_device
from zoo_core.training.features import Feeder, cached_features, chunks, features_cache, quiet
from zoo_core.training.loop import Epoch, train_epochs
from zoo_core.training.model import TransferModel, make_head, run_backbone
from zoo_core.training.options import FinetuneOptions
from zoo_core.training.splits import Splits

__all__ = [
    "FeatureSets",
    "Job",
    "Trained",
    "distributed",
    "features_head",
    "features_key",
    "freeze_for_strategy",
    "frozen_features",
    "in_process_group",
    "network_optimiser",
    "network_run",
    "scratch_network",
]

BACKBONE_LR_SCALE = 0.1  # discriminative rates: pretrained layers learn 10x slower than the head


@dataclass(frozen=True)
class Job:
    """What a training needs besides the network: splits, preprocessing, options, seed, where to checkpoint."""

    splits: Splits
    transform: Any
    options: FinetuneOptions
    seed: int
    checkpoint: Path | None  # None: none kept (baselines, later seeds, processes other than the first)
    resume: bool
    identity: dict[str, Any]  # what the checkpoint belongs to: --resume refuses another run's
    device: torch.device = CPU  # where networks train and features are computed (`resolve_device`)


@dataclass(frozen=True)
class FeatureSets:
    """A frozen backbone's features of each split, rows in dataset order."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass
class Trained:
    """One method's outcome on one seed."""

    curve: list[Epoch] | None
    val_scores: np.ndarray
    test_scores: np.ndarray
    seconds: float = 0.0  # wall time of its training and scoring, features included


def features_key(spec: ModelSpec, weights: str, options: FinetuneOptions, device: torch.device) -> list[str]:
    """What a frozen backbone's features depend on besides preprocessing and data (`cached_features` adds
    those): `zoo finetune` and `zoo rank` key the cache alike, so one reuses what the other computed.

    The device and the precision change the bits (a GPU's kernels sum in another order, bf16 rounds), so
    they are part of the key (`kernels`: for CUDA the GPU's name and CUDA version), except at fp32 on a CPU:
    keys written before zoo trained on GPUs stay valid. Workers and the GPU's index change nothing and are
    left out."""
    key = [spec.name, weights, f"drop_last={options.drop_last}", f"threads={options.threads}"]
    if device.type != "cpu" or options.precision != "fp32":
        key.append(f"device={kernels(device)} precision={options.precision}")
    return key


def frozen_features(backbone: Any, key: list[str], job: Job) -> FeatureSets:
    """Each split's features from `backbone` as loaded (before any fine-tuning), cached on disk; computed on
    the job's device, the backbone back on the CPU afterwards."""
    cache = features_cache()
    options, transform = job.options, job.transform
    with on_device(backbone, job.device), fitting_memory(job.device, options.batch_size):
        train, val, test = (
            cached_features(
                backbone,
                key,
                part,
                transform,
                options.batch_size,
                cache,
                precision=options.precision,
                workers=options.workers,
            )
            for part in job.splits
        )
    return FeatureSets(train, val, test)


def _probabilities(logits: torch.Tensor) -> np.ndarray:
    return np.asarray(torch.softmax(logits.float(), dim=1).numpy(), dtype=np.float64)


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


def features_head(features: FeatureSets, job: Job, head_kind: str) -> tuple[nn.Module, Trained]:
    """A new head trained on frozen features: by scikit-learn (``logreg``) or by AdamW with early stopping."""
    options, train, val = job.options, job.splits.train, job.splits.val
    classes = len(train.classes)
    val_x, val_y = torch.tensor(features.val), torch.tensor(val.labels)
    if head_kind == "logreg":
        head: nn.Module = _logreg_head(features.train, train.labels, classes, job.seed)
        with torch.no_grad():
            logits = head(val_x)
        loss, accuracy = nn.functional.cross_entropy(logits, val_y), (logits.argmax(1) == val_y).float().mean()
        curve = [
            {"epoch": 1, "val_loss": float(loss), "val_accuracy": float(accuracy)}
        ]  # fitted at once: no train loss
    else:
        head = make_head(head_kind, features.train.shape[1], classes)
        inputs, labels = torch.tensor(features.train), torch.tensor(train.labels)

        def train_batches(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(job.seed + epoch))
            chunks = [order[start : start + options.batch_size] for start in range(0, len(order), options.batch_size)]
            return [(inputs[chunk], labels[chunk]) for chunk in chunks]

        optimizer = torch.optim.AdamW(head.parameters(), lr=options.lr)
        curve, best = train_epochs(
            head,
            optimizer,
            None,
            train_batches,
            lambda: [(val_x, val_y)],
            options.epochs,
            options.patience,
            job.checkpoint,
            job.resume,
            job.seed,
            quiet=quiet(),
            identity=job.identity,
        )
        head.load_state_dict(best)
    head.eval()
    with torch.no_grad():
        scores = [_probabilities(head(torch.tensor(part))) for part in (features.val, features.test)]
    return head, Trained(curve, scores[0], scores[1])


def in_process_group() -> bool:
    """Whether this process is in a torch.distributed process group (zoo's under torchrun, or its caller's)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def distributed(device: torch.device | None = None) -> tuple[int, int]:
    """(rank, world size): the process group's where one is set up; under torchrun, the group is set up on
    first use, for this process's `device`: NCCL between GPUs (each process on its own, `resolve_device`),
    gloo between CPU processes."""
    import torch.distributed as dist

    if in_process_group():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if device is not None and device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def _scores(model: nn.Module, dataset: Dataset, job: Job) -> np.ndarray:
    from zoo_core.training.evaluate import predict_scores

    options = job.options
    return predict_scores(
        model, dataset, job.transform, options.batch_size, precision=options.precision, workers=options.workers
    )


def freeze_for_strategy(backbone: Any, strategy: str, unfreeze: int) -> list[str]:
    """Freeze `backbone`'s layer groups as `strategy` trains them: none for full, all but the last
    `unfreeze` + 1 (the head counts) for finetune, all for features. Returns the groups left trainable; `zoo
    adapt` calls it too, to act only on the layers a saved run trained."""
    groups = len(backbone.layer_groups())
    opened = {"full": groups, "features": 0}.get(strategy, min(unfreeze + 1, groups))
    return list(backbone.freeze(all_but_last=opened))


def network_optimiser(
    backbone: Any, head: nn.Module, options: FinetuneOptions, train_items: int, strategy: str, pretrained: bool = True
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimiser and scheduler a network strategy trains `head` and the backbone stages
    `freeze_for_strategy` left open with (single-task and multi-task runs alike): AdamW, the pretrained stages
    at `BACKBONE_LR_SCALE` of the head's rate (they move slower than the new head), and for ``full`` a warmup
    over the first epoch of `train_items` (else no scheduler)."""
    trainable = [p for p in backbone.parameters() if p.requires_grad]
    rate = options.lr * (BACKBONE_LR_SCALE if pretrained else 1.0)
    groups_and_rates: list[dict[str, Any]] = [{"params": trainable, "lr": rate}, {"params": head.parameters()}]
    optimizer = torch.optim.AdamW(groups_and_rates, lr=options.lr)
    steps = max(1, -(-train_items // options.batch_size))
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / steps))  # one epoch
    return optimizer, warmup if strategy == "full" else None


def network_run(model: TransferModel, job: Job, strategy: str, pretrained: bool = True) -> Trained:
    """Train `model`'s head and the backbone stages `strategy` opens, with early stopping on validation loss,
    on the job's device (the model back on the CPU afterwards, holding the best epoch).

    Before each validation pass, the BatchNorm statistics of the layers that train are re-estimated on the
    training set (`recompute_batchnorm`): a few steps an epoch never settle them, for transfer and scratch
    alike; the saved state holds what was set.
    """
    from zoo_core.training.baselines import recompute_batchnorm

    options, train, device = job.options, job.splits.train, job.device
    rank, world = distributed(device)
    backbone = model.backbone
    freeze_for_strategy(backbone, strategy, options.unfreeze)
    feeding: dict[str, Any] = {"workers": options.workers, "pin_memory": device.type == "cuda"}
    train_feed = Feeder(train, job.transform, **feeding)  # its workers serve every epoch
    val_feed = Feeder(job.splits.val, job.transform, **feeding)

    def train_batches(epoch: int) -> Any:
        order = torch.randperm(len(train.items), generator=torch.Generator().manual_seed(job.seed + epoch)).tolist()
        # every process takes its share of each global batch; a batch that cannot give every process two
        # samples (BatchNorm needs two) is skipped by all of them
        return train_feed(
            [chunk[rank::world] for chunk in chunks(order, options.batch_size) if len(chunk) >= 2 * world]
        )

    def prepare() -> None:
        everything = chunks(list(range(len(train.items))), options.batch_size)
        recompute_batchnorm(model, train_feed(everything), precision=options.precision)

    with on_device(model, device), fitting_memory(device, options.batch_size):
        optimizer, scheduler = network_optimiser(backbone, model.head, options, len(train.items), strategy, pretrained)
        trained: nn.Module = model
        if in_process_group():  # gradients are averaged over the processes: one process's step on the whole batch
            ids = [device.index] if device.type == "cuda" else None
            trained = nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
        curve, best = train_epochs(
            trained,
            optimizer,
            scheduler,
            train_batches,
            lambda: val_feed(chunks(list(range(len(job.splits.val.items))), options.batch_size)),
            options.epochs,
            options.patience,
            job.checkpoint,
            job.resume,
            job.seed,
            quiet=rank != 0 or quiet(),
            identity=job.identity,
            before_evaluation=prepare,
            device=device,
            precision=options.precision,
        )
        model.load_state_dict(best)
        model.eval()
        return Trained(curve, _scores(model, job.splits.val, job), _scores(model, job.splits.test, job))


def scratch_network(spec: ModelSpec, job: Job) -> Trained:
    """The same architecture from random weights, trained end to end on the same budget."""
    from zoo_core.loading import load

    backbone = load(spec, pretrained=False)
    run_backbone(backbone, job.options.drop_last)
    model = TransferModel(backbone, make_head("linear", backbone.feature_dim, len(job.splits.train.classes)))
    return network_run(model, job, "full", pretrained=False)
