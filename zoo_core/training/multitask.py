"""`zoo_core.training.multitask.finetune_tasks`: one backbone, one head per task, trained jointly.

``zoo finetune NAME --task digit=DATA_A --task parity=DATA_B [--task-weight parity=0.5]``. Each task is split
on its own (`multitask_splits`: the single-task rules, and an item two tasks share in the same split for
both). Every training step takes one *mixed* batch of the tasks' items, each item carrying its label in each
task it belongs to: an image two tasks share goes through the backbone once for both, and every task's items
are all seen once an epoch whatever the tasks' sizes. The loss is Σ weight_t · cross-entropy_t (each task's
mean over its items in the batch); the epoch kept is the one with the lowest weighted validation loss.

Strategies are the single-task ones: ``features`` trains the heads on the frozen backbone's cached features
(computed once, shared by every head); ``finetune`` and ``full`` also train the backbone's last stages or all
of it, at a tenth of the heads' rate, with BatchNorm re-estimated on the training items before validation.
Each task is reported on its own test split. ``--repeats`` runs more seeds (mean ± std per task); baselines,
``--head logreg``, ``--val``/``--test`` and torchrun with more than one process are refused in one line.

The run folder holds what a single-task run's does, per task where it differs: ``model.safetensors``
(``backbone.*`` and ``heads.<task>.*``), ``labels.json`` ({task: classes}), ``tasks/<task>/splits.json``,
``metrics.json`` (per task), ``manifest.json`` (``tasks``: each task's data, fingerprints and weight),
``preprocessing.json``, ``curves.png`` (the joint validation curve) and ``last.pt`` for ``--resume``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo_core._version import __version__
from zoo_core.catalogue import Catalogue
from zoo_core.catalogue_sources import default_catalogue
from zoo_core.download import fetch
from zoo_core.errors import RunOptionError
from zoo_core.loading import load
from zoo_core.plugins import used_plugins
from zoo_core.specs import ModelSpec
from zoo_core.training.data import dataset_kind
from zoo_core.training.device import device_name, fitting_memory, on_device, resolve_device
from zoo_core.training.features import Feeder, chunks, compute_features, quiet
from zoo_core.training.loop import Epoch, Objective, train_epochs
from zoo_core.training.model import make_head, run_backbone
from zoo_core.training.multitask_model import MultiTaskModel, TaskHeads
from zoo_core.training.multitask_splits import SPLIT_NAMES, Joint, joint, task_splits
from zoo_core.training.options import FinetuneOptions
from zoo_core.training.report import curve_gains, method_summary, plot_curves
from zoo_core.training.runfolder import CHECKPOINT, staged_run, write_json
from zoo_core.training.splits import Splits, write_splits
from zoo_core.training.strategies import (
    Job,
    Trained,
    features_key,
    freeze_for_strategy,
    frozen_features,
    network_optimiser,
)
from zoo_core.training.tasks import ONE_TASK, TASKS_FOLDER, check_task_name, check_weight, checked_weights

__all__ = [
    "finetune_tasks",
    "finetune_tasks_from_manifest",
    "weighted_objective",
]


def weighted_objective(weights: Mapping[str, float]) -> Objective:
    """Σ weight_t · cross-entropy_t over batches whose labels are (items, tasks), -1 where an item is not the
    task's. Training takes each task's mean over its items in the batch; validation takes each task's mean
    over its items in the WHOLE split (summed cross-entropy and count per task, combined at the epoch's end),
    so the epoch kept does not depend on how the validation items fall into batches."""
    columns = list(enumerate(weights.items()))

    def loss(outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), device=labels.device)
        for column, (name, weight) in columns:
            mine = labels[:, column] >= 0
            if bool(mine.any()):
                total = total + weight * nn.functional.cross_entropy(outputs[name][mine].float(), labels[mine, column])
        return total

    def totals(outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        rows = []
        for column, (name, _) in columns:
            mine = labels[:, column] >= 0
            summed = nn.functional.cross_entropy(outputs[name][mine].float(), labels[mine, column], reduction="sum")
            rows.append(torch.stack([summed.double(), mine.sum().double()]))
        return torch.stack(rows)  # (tasks, 2): each task's summed cross-entropy and its items

    def summarise(summed: torch.Tensor) -> float:
        return sum(
            weight * float(summed[column, 0] / summed[column, 1])
            for column, (_, weight) in columns
            if summed[column, 1] > 0
        )

    def hits(outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> tuple[int, int]:
        correct = counted = 0
        for column, (name, _) in columns:
            mine = labels[:, column] >= 0
            correct += int((outputs[name][mine].argmax(dim=1) == labels[mine, column]).sum())
            counted += int(mine.sum())
        return correct, counted

    return Objective(loss=loss, hits=hits, totals=totals, summarise=summarise)


@dataclasses.dataclass(frozen=True)
class _Seed:
    """What one seed's training needs: the tasks' splits, their joint items, and where to checkpoint."""

    tasks: dict[str, Splits]
    joints: dict[str, Joint]  # by split name
    weights: dict[str, float]
    transform: Any
    options: FinetuneOptions
    seed: int
    checkpoint: Path | None
    resume: bool
    identity: dict[str, Any]
    device: torch.device  # where the heads (features) or the network train (`resolve_device`)


@dataclasses.dataclass
class _TrainedTasks:
    """One seed's multi-task model, its joint validation curve and each task's probabilities."""

    model: MultiTaskModel
    curve: list[Epoch]
    scores: dict[str, dict[str, np.ndarray]]  # split -> task -> probabilities, rows in the task's split order
    steps: int
    seconds: float = 0.0


class _JointFeed:
    """(inputs, every task's labels) batches of one joint split, fed as single-task runs feed theirs (a
    `Feeder`: ``--workers`` processes, pinned memory for a GPU)."""

    def __init__(self, part: Joint, job: _Seed) -> None:
        options = job.options
        self.part, self.size = part, options.batch_size
        pinned = job.device.type == "cuda"
        self.feeder = Feeder(part.items, job.transform, workers=options.workers, pin_memory=pinned)

    def __call__(self, planned: list[list[int]] | None = None) -> Iterator[tuple[Any, torch.Tensor]]:
        """The batches `planned` (rows of the joint split), or all of it in order."""
        planned = planned if planned is not None else chunks(list(range(len(self.part.items.items))), self.size)
        for (inputs, _), rows in zip(self.feeder(planned), planned, strict=True):
            yield inputs, torch.from_numpy(self.part.labels[rows])


def _shuffled(count: int, size: int, seed: int, smallest: int = 1) -> list[list[int]]:
    """A seeded shuffle of `count` rows in batches of `size`, less a last batch under `smallest` items."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return [part for part in chunks(order, size) if len(part) >= smallest]


def _steps(curve: list[Epoch], count: int, size: int, smallest: int = 1) -> int:
    """The optimiser steps behind `curve`, a resumed run's epochs before this process included: every epoch
    takes the same number of `_shuffled` batches of its `count` training rows."""
    return len(curve) * len(_shuffled(count, size, 0, smallest))


def _probabilities(heads: TaskHeads, features: np.ndarray, part: Joint) -> dict[str, np.ndarray]:
    """Each task's class probabilities for its own items of `part`, from the joint items' `features`."""
    heads.eval()
    with torch.no_grad():
        logits = heads(torch.from_numpy(features))
    return {name: torch.softmax(logits[name][rows].double(), dim=1).numpy() for name, rows in part.rows.items()}


def _train_heads(model: MultiTaskModel, spec: ModelSpec, weights_id: str, job: _Seed) -> _TrainedTasks:
    """``features``: the heads on the frozen backbone's features, computed once and shared by every head."""
    options, parts = job.options, job.joints
    items = Splits(*(parts[name].items for name in SPLIT_NAMES))
    single = Job(items, job.transform, options, job.seed, None, False, {}, job.device)
    features = frozen_features(model.backbone, features_key(spec, weights_id, options, job.device), single)
    heads = TaskHeads(model.heads)
    inputs, labels = torch.from_numpy(features.train), torch.from_numpy(parts["train"].labels)

    def train_batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for rows in _shuffled(len(labels), options.batch_size, job.seed + epoch):
            yield inputs[rows], labels[rows]

    validation = [(torch.from_numpy(features.val), torch.from_numpy(parts["val"].labels))]
    optimizer = torch.optim.AdamW(heads.parameters(), lr=options.lr)
    curve, best = _train(heads, optimizer, None, train_batches, lambda: validation, job)
    heads.load_state_dict(best)
    scores = {split: _probabilities(heads, getattr(features, split), parts[split]) for split in ("val", "test")}
    return _TrainedTasks(model, curve, scores, _steps(curve, len(labels), options.batch_size))


def _train_network(model: MultiTaskModel, strategy: str, job: _Seed) -> _TrainedTasks:
    """``finetune``/``full``: the heads and the backbone stages `strategy` opens, frozen and optimised as
    single-task runs are (`freeze_for_strategy`, `network_optimiser`), BatchNorm re-estimated before
    validation, a GPU running out of memory said in one line (`fitting_memory`)."""
    from zoo_core.training.baselines import recompute_batchnorm

    options, train = job.options, job.joints["train"]
    backbone = model.backbone
    freeze_for_strategy(backbone, strategy, options.unfreeze)
    optimizer, scheduler = network_optimiser(backbone, model.heads, options, len(train.items.items), strategy)
    feeds = {split: _JointFeed(part, job) for split, part in job.joints.items()}

    def train_batches(epoch: int) -> Iterator[tuple[Any, torch.Tensor]]:
        planned = _shuffled(len(train.items.items), options.batch_size, job.seed + epoch, smallest=2)  # BatchNorm
        return feeds["train"](planned)

    def prepare() -> None:
        recompute_batchnorm(model, feeds["train"](), precision=options.precision)

    with fitting_memory(job.device, options.batch_size):
        curve, best = _train(model, optimizer, scheduler, train_batches, feeds["val"], job, prepare)
    model.load_state_dict(best)
    model.eval()
    scores = {}
    with on_device(backbone, job.device):
        for split in ("val", "test"):
            part = job.joints[split]
            features = compute_features(
                backbone,
                part.items,
                job.transform,
                options.batch_size,
                precision=options.precision,
                workers=options.workers,
            )
            scores[split] = _probabilities(TaskHeads(model.heads), features, part)
    return _TrainedTasks(model, curve, scores, _steps(curve, len(train.items.items), options.batch_size, smallest=2))


def _train(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    train: Callable[[int], Iterable[tuple[Any, torch.Tensor]]],
    val: Callable[[], Iterable[tuple[Any, torch.Tensor]]],
    job: _Seed,
    prepare: Callable[[], None] | None = None,
) -> tuple[list[Epoch], dict[str, torch.Tensor]]:
    """`train_epochs` on the run's device and precision, with the weighted objective; the module is on the
    device for the training only."""
    options = job.options
    with on_device(module, job.device):
        curve, best = train_epochs(
            module,
            optimizer,
            scheduler,
            train,
            val,
            options.epochs,
            options.patience,
            job.checkpoint,
            job.resume,
            job.seed,
            quiet=quiet(),
            identity=job.identity,
            before_evaluation=prepare,
            objective=weighted_objective(job.weights),
            device=job.device,
            precision=options.precision,
        )
    _refuse_diverged(curve)
    return curve, best


def _refuse_diverged(curve: list[Epoch]) -> None:
    """A curve whose loss went infinite or NaN ends the run in one line naming the cause, before it is
    written anywhere (JSON has no NaN)."""
    for epoch in curve:
        for key in ("train_loss", "val_loss"):
            if not math.isfinite(epoch[key]):
                where = "training" if key == "train_loss" else "validation"
                raise RunOptionError(
                    f"epoch {int(epoch['epoch'])}: the {where} loss is not finite ({epoch[key]}): the weighted loss "
                    "diverged; lower --lr or --task-weight"
                )


def _one_seed(spec: ModelSpec, weights_id: str, job: _Seed) -> _TrainedTasks:
    from zoo_core.training.run import seed_everything

    options = job.options
    seed_everything(job.seed)
    started = time.perf_counter()
    backbone = load(spec)
    run_backbone(backbone, options.drop_last)
    heads = {
        name: make_head(options.head, backbone.feature_dim, len(splits.train.classes))
        for name, splits in job.tasks.items()
    }
    model = MultiTaskModel(backbone, heads)
    if options.strategy == "features":
        trained = _train_heads(model, spec, weights_id, job)
    else:
        trained = _train_network(model, options.strategy, job)
    trained.seconds = time.perf_counter() - started
    return trained


def _refuse_options(options: FinetuneOptions) -> None:
    """What a multi-task run cannot do, in one line each, before anything is read."""
    if options.baseline:
        raise RunOptionError(
            f"--baseline {options.baseline[0]}: baselines compare one task's model; run each task alone for them"
        )
    if options.head == "logreg":
        raise RunOptionError("--head logreg fits one task's classifier: use --head linear or mlp with --task")
    if options.val or options.test:
        raise RunOptionError(
            "--val/--test give one dataset's split; with --task each task is split by --val-split and --test-split"
        )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RunOptionError("--task runs in one process: run it without torchrun (one GPU, or the CPU)")


def _identity(
    spec: ModelSpec, weights_id: str, tasks: dict[str, Splits], weights: dict[str, float], options: FinetuneOptions
) -> dict[str, Any]:
    """What the checkpoint belongs to: options, model, weights, and every task's data and weight."""
    from zoo_core.training.run import EXTENDABLE, PLACEMENT

    # as a single-task run's: a resumed run may go on for longer, and on another device
    kept = {key: value for key, value in dataclasses.asdict(options).items() if key not in EXTENDABLE + PLACEMENT}
    identity: dict[str, Any] = {f"--{key.replace('_', '-')}": value for key, value in kept.items()}
    identity |= {"model": spec.name, "weights": weights_id}
    for name, splits in tasks.items():
        identity |= {f"--task-weight {name}": weights[name]}
        identity |= {f"task {name} {split} data": dataset.fingerprint() for split, dataset in splits.named().items()}
    return identity


def finetune_tasks(
    model: str | ModelSpec,
    tasks: Mapping[str, Path],
    out: Path,
    options: FinetuneOptions = FinetuneOptions(),
    weights: Mapping[str, float] | None = None,
    resume: bool = False,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """Train one backbone with a head per task of `tasks` ({name: labelled data}) into the run folder `out`;
    returns the metrics. `weights` weigh each task's loss (1 for a task not named). Names, weights, data and
    options are all checked before anything is written."""
    for name in tasks:
        check_task_name(name, "--task")
    if len(tasks) < 2:
        raise RunOptionError(ONE_TASK)
    chosen = checked_weights(weights or {}, tasks)
    _refuse_options(options)
    spec = model if isinstance(model, ModelSpec) else (catalogue or default_catalogue()).get(model)
    with used_plugins() as used:
        return _finetune_tasks(
            spec, {name: Path(data).resolve() for name, data in tasks.items()}, out, options, chosen, resume, used
        )


def _finetune_tasks(
    spec: ModelSpec,
    data: dict[str, Path],
    out: Path,
    options: FinetuneOptions,
    weights: dict[str, float],
    resume: bool,
    used: Mapping[str, set[str]],
) -> dict[str, Any]:
    from zoo_core.training.run import pinned_threads, usable_transform, weights_id

    if spec.modality == "embedding":
        raise RunOptionError(
            f"--task needs a network backbone, and {spec.name} is word vectors: train each task alone on them "
            "(zoo finetune NAME DATA), or use a text encoder such as minilm"
        )
    transforms = [usable_transform(spec, path, label_column=name) for name, path in data.items()]
    transform = transforms[0]  # one model's preprocessing, whatever the task
    kind = dataset_kind(spec.modality)
    seeds = [options.seed + repeat for repeat in range(options.repeats)]
    splits = [task_splits(data, kind, options, seed) for seed in seeds]  # every refusal before anything is written
    device = resolve_device(options.device, options.precision)
    with staged_run(out, resume=resume) as staging, pinned_threads(options.threads):
        record = fetch(spec)
        weights_of = weights_id(record)
        runs: list[_TrainedTasks] = []
        for repeat, (seed, tasks) in enumerate(zip(seeds, splits, strict=True)):
            joints = {split: joint(tasks, split) for split in SPLIT_NAMES}
            identity = _identity(spec, weights_of, tasks, weights, options)
            checkpoint = staging / CHECKPOINT if repeat == 0 else None
            job = _Seed(tasks, joints, weights, transform, options, seed, checkpoint, resume, identity, device)
            runs.append(_one_seed(spec, weights_of, job))
        metrics = _metrics(spec, options, data, weights, seeds, splits, runs)
        plot_curves(_joint_curves(metrics, runs), 0.0, staging / "curves.png", f"{spec.name}: {', '.join(data)}")
        saved = runs[0].model
        _write_artifacts(staging, spec, record, saved, splits[0], options, data, weights, metrics, used, device)
    return metrics


def _metrics(
    spec: ModelSpec,
    options: FinetuneOptions,
    data: dict[str, Path],
    weights: dict[str, float],
    seeds: list[int],
    splits: list[dict[str, Splits]],
    runs: list[_TrainedTasks],
) -> dict[str, Any]:
    """metrics.json: per task, its figures over seeds and the saved model's full test report; the joint
    training's curve, steps and time."""
    from zoo_core.training.evaluate import classification_report
    from zoo_core.training.run import measured_figures

    tasks = {}
    for name in data:
        first = splits[0][name]
        measured = [  # as a single-task run measures its transfer model; the curve is the joint one, under "joint"
            measured_figures(
                Trained(None, run.scores["val"][name], run.scores["test"][name], run.seconds), part[name], seed
            )
            for seed, part, run in zip(seeds, splits, runs, strict=True)
        ]
        tasks[name] = {
            "data": str(data[name]),
            "weight": weights[name],
            "classes": first.train.classes,
            "chance": 1 / len(first.train.classes),
            "sizes": {split: len(dataset.items) for split, dataset in first.named().items()},
            "transfer": method_summary(measured),
            "test": classification_report(
                first.test.labels, runs[0].scores["test"][name], first.test.classes, first.test.items
            ),
        }
    joint_runs = [
        {
            "seed": seed,
            "steps": run.steps,
            "seconds": round(run.seconds, 2),
            "curve": run.curve,
            **curve_gains(run.curve),
        }
        for seed, run in zip(seeds, runs, strict=True)
    ]
    return {
        "model": spec.name,
        "strategy": options.strategy,
        "seeds": seeds,
        "tasks": tasks,
        "joint": {"runs": joint_runs},
    }


def _joint_curves(metrics: dict[str, Any], runs: list[_TrainedTasks]) -> dict[str, dict[str, Any]]:
    """curves.png's one line: the joint validation accuracy (every task's labels counted once) that the
    weighted validation loss picked the epoch beside; its label gives the kept epoch's validation accuracy,
    as a single-task run's does, and the tasks' mean test accuracy."""
    tests = [
        float(np.mean([task["transfer"]["runs"][seed]["test"]["accuracy"] for task in metrics["tasks"].values()]))
        for seed in range(len(runs))
    ]
    summary = method_summary(
        [
            {
                "curve": run.curve,
                "val_accuracy": min(run.curve, key=lambda epoch: epoch["val_loss"])["val_accuracy"],  # the kept epoch
                "test": dict.fromkeys(("accuracy", "balanced_accuracy", "macro_f1"), test),
            }
            for run, test in zip(runs, tests, strict=True)
        ]
    )
    return {f"joint ({metrics['strategy']}), test: mean of tasks": summary}


def _write_artifacts(
    out: Path,
    spec: ModelSpec,
    record: Any,
    model: MultiTaskModel,
    splits: dict[str, Splits],
    options: FinetuneOptions,
    data: dict[str, Path],
    weights: dict[str, float],
    metrics: dict[str, Any],
    used: Mapping[str, set[str]],
    device: torch.device,
) -> None:
    from safetensors.torch import save_model

    from zoo_core.training.run import package_versions, plugin_records

    save_model(model, str(out / "model.safetensors"))
    write_json(out / "labels.json", {name: task.train.classes for name, task in splits.items()})
    write_json(out / "preprocessing.json", {"input": dataclasses.asdict(spec.input), "modality": spec.modality})
    for name, task in splits.items():
        (out / TASKS_FOLDER / name).mkdir(parents=True, exist_ok=True)
        write_splits(task, out / TASKS_FOLDER / name)
    write_json(out / "metrics.json", metrics)
    tasks = {
        name: {
            "data": str(data[name]),
            "weight": weights[name],
            "classes": task.train.classes,  # labels.json's order, kept here too so that an edit of either is seen
            "data_fingerprint": task.train.fingerprint(),
            "val_fingerprint": task.val.fingerprint(),
            "test_fingerprint": task.test.fingerprint(),
        }
        for name, task in splits.items()
    }
    manifest = {
        "zoo": __version__,
        "model": spec.name,
        "revision": record.commit,
        "files": {file.name: file.sha256 for file in record.files},
        "tasks": tasks,
        "options": dataclasses.asdict(options),
        "device": device_name(device),  # where --device auto went
        "packages": package_versions(),
        "plugins": plugin_records(spec, used),
    }
    write_json(out / "manifest.json", manifest)


def finetune_tasks_from_manifest(
    manifest: Path,
    out: Path,
    catalogue: Catalogue | None = None,
    resume: bool = False,
    placement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run again the multi-task run a manifest describes (same model, tasks, weights and options) into `out`;
    `placement` (``--device``, ``--workers``) replaces the manifest's, as for a single-task run."""
    from zoo_core.training.run import replayed

    def read(saved: dict[str, Any]) -> tuple[str, dict[str, Path], dict[str, float]]:
        entries = saved["tasks"].items()
        weights = {name: check_weight(task["weight"], f"{manifest}: tasks.{name}.weight") for name, task in entries}
        return saved["model"], {name: Path(task["data"]) for name, task in entries}, weights

    (model, tasks, weights), options = replayed(manifest, placement, "a multi-task run's", read)
    return finetune_tasks(model, tasks, out, options, weights, resume=resume, catalogue=catalogue)
