"""`zoo_core.training.run.finetune`: a whole transfer-learning run, from data to artifacts, with the evidence beside it.

A run splits its data three ways (`splits`): it trains on *train*, picks its epoch and stops early on
*validation*, and reports *test* once, for the saved model. Beside the transfer model it trains the baselines
``--baseline`` names on the same splits — ``scratch`` (the same architecture from random weights, same
budget), ``pixels`` (logistic regression on raw pixels, or bag of words for text) and ``knn`` (nearest
neighbours on the pretrained backbone's features) — and says plainly whether transfer beats each one.
``--repeats K`` does all of it for K seeds (seed, seed+1, ...; each draws its own splits unless they are given)
and reports mean ± standard deviation; the saved model is the first seed's.

A run folder holds everything export needs and everything needed to reproduce it: ``model.safetensors``
(the best epoch's backbone, less its own classifier, and head), ``labels.json``, ``preprocessing.json``,
``splits.json`` (the first seed's items per split), ``metrics.json``, ``manifest.json`` (model, revision, file
sha256s, absolute data paths and fingerprints, every option, package versions, and each plugin whose hook
answer the run used: its name, distribution, version and those hooks), ``curves.png``, and ``last.pt`` to
resume an interrupted run.
It is written beside its final place and moved there whole, one run at a time (`runfolder`).

Runs are reproducible: every generator is seeded, and torch's CPU threads are pinned to ``--threads``
(default 1) while training, because CPU kernels split their sums by thread — BatchNorm over 1x1 maps,
MKL's matrix products — so the same seed on another thread count gives other bits.

``--device`` is resolved once, before anything is written (`resolve_device`: a GPU that is not there is a
one-line refusal); networks train and features are computed there, and come back to the CPU to be saved, so
model.safetensors holds no device. A checkpoint keeps ``--precision`` in what it belongs to but not
``--device`` or ``--workers``: a run started on a GPU may resume on a CPU (docs/gpu.md).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from zoo_core._version import __version__
from zoo_core.catalogue import Catalogue
from zoo_core.catalogue_sources import default_catalogue
from zoo_core.compatibility import check
from zoo_core.download import fetch
from zoo_core.errors import DataError, RunOptionError
from zoo_core.loading import load
from zoo_core.plugins import plugin_distribution, used_plugins
from zoo_core.records import ModelRecord
from zoo_core.specs import ModelSpec
from zoo_core.textdata import read_texts
from zoo_core.training.data import dataset_kind
from zoo_core.training.device import device_name, replayable, resolve_device
from zoo_core.training.model import TransferModel, make_head, run_backbone
from zoo_core.training.options import FinetuneOptions
from zoo_core.training.report import curve_gains, method_summary, plot_curves, verdict
from zoo_core.training.runfolder import CHECKPOINT, staged_run, write_json
from zoo_core.training.splits import Splits, three_splits, write_splits
from zoo_core.training.strategies import (
    FeatureSets,
    Job,
    Trained,
    distributed,
    features_head,
    features_key,
    frozen_features,
    in_process_group,
    network_run,
    scratch_network,
)

__all__ = [
    "FinetuneOptions",
    "finetune",
    "finetune_from_manifest",
    "measured_figures",
    "package_versions",
    "pinned_threads",
    "plugin_records",
    "replayed",
    "run_splits",
    "seed_everything",
    "usable_transform",
    "weights_id",
]

PACKAGES = ("torch", "torchvision", "timm", "transformers", "numpy", "scikit-learn", "zoo-tl")
Replayed = TypeVar("Replayed")
EXTENDABLE = ("epochs", "patience")  # options a resumed run may change: it may go on for longer
PLACEMENT = ("device", "workers")  # where a run trains, not what it computes: a resumed run may change them


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


def usable_transform(spec: ModelSpec, data: Path, label_column: str | None = None) -> Any:
    """The preprocessing `zoo check` builds for `data`; its first error, if any, stops the run here. A
    multi-task run's text task (`label_column`: the column of its name) is checked on its texts alone: the
    file's ``label`` column may not be its labels, and its own are checked as they are split."""
    labelled_elsewhere = label_column is not None and spec.modality != "image" and data.is_file()
    report = check(spec, read_texts(data, label_column).texts if labelled_elsewhere else data)
    errors = [finding for finding in report.findings if finding.level == "error"]
    if errors:
        raise DataError(
            f"{data} is not usable with {spec.name}: {errors[0].message}; see `zoo check {spec.name} {data}`"
        )
    return report.transform


def run_splits(data: Path, kind: str, options: FinetuneOptions, seed: int, label_column: str | None = None) -> Splits:
    """The three splits a run with `options` uses for `seed` (a text file's labels from `label_column` where it
    has one: a multi-task run's task takes the column of its name)."""
    return three_splits(
        data,
        kind,
        val=Path(options.val) if options.val else None,
        test=Path(options.test) if options.test else None,
        val_split=options.val_split,
        test_split=options.test_split,
        seed=seed,
        label_column=label_column,
    )


def weights_id(record: ModelRecord) -> str:
    """The weights a run uses, by every file's name and sha256: what keys its features and its checkpoint."""
    return " ".join(f"{file.name}={file.sha256}" for file in sorted(record.files, key=lambda file: file.name))


def package_versions() -> dict[str, str]:
    """manifest.json's "packages": the installed version of each package that shapes a run's numbers."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def plugin_records(spec: ModelSpec, used: Mapping[str, set[str]]) -> list[dict[str, Any]]:
    """manifest.json's "plugins": each plugin whose hook answer the run used (the spec's own always), with
    the distribution that installed it, its version (None where unknown) and those hooks."""
    hooks = {name: sorted(names) for name, names in used.items()}
    hooks.setdefault(spec.plugin, [])
    found = []
    for name in sorted(hooks):
        distribution, version = plugin_distribution(name)
        found.append({"name": name, "distribution": distribution, "version": version, "hooks": hooks[name]})
    return found


def _identity(spec: ModelSpec, weights: str, splits: Splits, options: FinetuneOptions) -> dict[str, Any]:
    """What a checkpoint belongs to, by the name a refusal shows: options first (a different seed or split
    also changes the data fingerprints), then the model, its weights and the data."""
    left_out = (*EXTENDABLE, *PLACEMENT)
    kept = {key: value for key, value in dataclasses.asdict(options).items() if key not in left_out}
    return {
        **{f"--{key.replace('_', '-')}": value for key, value in kept.items()},
        "model": spec.name,
        "weights": weights,
        "data": splits.train.fingerprint(),
        "validation data": splits.val.fingerprint(),
        "test data": splits.test.fingerprint(),
    }


def _run_folder(out: Path, resume: bool, rank: int) -> AbstractContextManager[Path | None]:
    """The staging folder to write into; under torchrun, only the first process has one."""
    return staged_run(out, resume=resume) if rank == 0 else nullcontext()


def measured_figures(trained: Trained, splits: Splits, seed: int) -> dict[str, Any]:
    """One method's figures on one seed: its curve's gains, validation accuracy and the test figures."""
    from zoo_core.training.evaluate import classification_report

    def accuracy(scores: np.ndarray, labels: list[int]) -> float:
        return float(np.mean(scores.argmax(axis=1) == np.asarray(labels)))

    test = classification_report(splits.test.labels, trained.test_scores, splits.test.classes, splits.test.items)
    figures: dict[str, Any] = {"seed": seed, "seconds": round(trained.seconds, 2)}
    figures["val_accuracy"] = accuracy(trained.val_scores, splits.val.labels)
    if trained.curve is not None:
        figures |= {**curve_gains(trained.curve), "curve": trained.curve}
    figures["test"] = {key: test[key] for key in ("accuracy", "balanced_accuracy", "macro_f1")}
    return figures


def _baselines(
    spec: ModelSpec, weights: str, backbone: Any, job: Job, features: FeatureSets | None, features_seconds: float
) -> dict[str, Trained]:
    """The baselines `--baseline` names, each trained on the same splits as the transfer model; knn's time
    includes the features it reads (`features_seconds`), which the transfer run shares."""
    from zoo_core.training.baselines import knn_baseline, pixel_baseline

    splits, found = job.splits, {}
    job = dataclasses.replace(job, checkpoint=None, resume=False)  # the transfer model's checkpoint is not theirs
    for name in job.options.baseline:
        seed_everything(job.seed)
        started = time.perf_counter()
        if name == "scratch":
            found[name] = _scratch(spec, weights, backbone, job)
        elif name == "pixels":
            val, test = pixel_baseline(splits.train, [splits.val, splits.test])
            found[name] = Trained(None, val, test)
        else:
            assert features is not None  # computed whenever knn is asked for
            val, test = knn_baseline(
                features.train, splits.train.labels, [features.val, features.test], len(splits.train.classes)
            )
            found[name] = Trained(None, val, test)
        found[name].seconds = time.perf_counter() - started + (features_seconds if name == "knn" else 0.0)
    return found


def _scratch(spec: ModelSpec, weights: str, backbone: Any, job: Job) -> Trained:
    """The same model without pretraining, same budget: random weights trained end to end, or, for word
    vectors, random vectors under the same head."""
    if hasattr(backbone, "scratch_copy"):
        random_vectors = backbone.scratch_copy(job.seed)
        key = [f"{spec.name}.random", weights, f"random seed={job.seed}", f"threads={job.options.threads}"]
        _, trained = features_head(frozen_features(random_vectors, key, job), job, job.options.head)
        return trained
    return scratch_network(spec, job)


def _one_seed(spec: ModelSpec, weights: str, job: Job) -> tuple[TransferModel, dict[str, Trained]]:
    """The transfer model and every baseline, trained for `job.seed`."""
    options = job.options
    seed_everything(job.seed)
    started = time.perf_counter()
    backbone = load(spec)
    run_backbone(backbone, options.drop_last)
    features = None
    if options.strategy == "features" or "knn" in options.baseline:  # the pretrained backbone's, before training
        features = frozen_features(backbone, features_key(spec, weights, options, job.device), job)
    features_seconds = time.perf_counter() - started
    if options.strategy == "features":
        assert features is not None
        head, trained = features_head(features, job, options.head)
        model = TransferModel(backbone, head)
    else:
        model = TransferModel(backbone, make_head(options.head, backbone.feature_dim, len(job.splits.train.classes)))
        trained = network_run(model, job, options.strategy)
    trained.seconds = time.perf_counter() - started
    return model, {
        f"transfer ({options.strategy})": trained,
        **_baselines(spec, weights, backbone, job, features, features_seconds),
    }


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
    with used_plugins() as used:  # from the data check on: manifest.json names the plugins that answered
        return _finetune(spec, data.resolve(), out, options, resume, used)


def _finetune(
    spec: ModelSpec, data: Path, out: Path, options: FinetuneOptions, resume: bool, used: Mapping[str, set[str]]
) -> dict[str, Any]:
    """`finetune` of `spec`; `data` is absolute (recorded so, the run can be exported or reproduced from
    anywhere); `used` fills with the plugins whose hook answers the run uses."""
    options = dataclasses.replace(
        options,
        val=str(Path(options.val).resolve()) if options.val else None,
        test=str(Path(options.test).resolve()) if options.test else None,
    )
    if spec.modality == "embedding" and options.strategy != "features":  # a word list, no network to train
        raise RunOptionError(
            f"--strategy {options.strategy} cannot train {spec.name}: word vectors are only used frozen: "
            "use --strategy features"
        )
    transform = usable_transform(spec, data)
    kind = dataset_kind(spec.modality)
    seeds = [options.seed + repeat for repeat in range(options.repeats)]
    splits = [run_splits(data, kind, options, seed) for seed in seeds]  # every refusal before anything is written
    device = resolve_device(options.device, options.precision)
    ours = not in_process_group()  # a group the caller set up is left to it
    rank, world = distributed(device)
    if resume and world > 1:  # only process 0 keeps a checkpoint: the others would start again from epoch 1
        raise RunOptionError("--resume works with one process only: resume without torchrun, or start afresh")
    with _run_folder(out, resume, rank) as staging, pinned_threads(options.threads):
        record = fetch(spec)
        weights = weights_id(record)
        outcomes: dict[str, list[dict[str, Any]]] = {}
        saved: tuple[TransferModel, dict[str, Trained]] | None = None
        for repeat, (seed, seed_splits) in enumerate(zip(seeds, splits, strict=True)):
            # the first seed's model is the one saved and resumed
            checkpoint = staging / CHECKPOINT if staging is not None and repeat == 0 else None
            identity = _identity(spec, weights, seed_splits, options)
            network, trained = _one_seed(
                spec, weights, Job(seed_splits, transform, options, seed, checkpoint, resume, identity, device)
            )
            if repeat == 0:
                saved = network, trained
            for method, result in trained.items():
                outcomes.setdefault(method, []).append(measured_figures(result, seed_splits, seed))
        assert saved is not None
        metrics = _metrics(spec, options, splits[0], seeds, outcomes, saved[1])
        if staging is not None:  # under torchrun, one process writes the run folder
            methods = {f"transfer ({options.strategy})": metrics["transfer"], **metrics["baselines"]}
            plot_curves(methods, metrics["chance"], staging / "curves.png", f"{spec.name} on {data.name}")
            plugins = plugin_records(spec, used)
            _write_artifacts(staging, spec, record, saved[0], splits[0], options, data, metrics, plugins, device=device)
    if ours and world > 1:  # every process gets here: the group zoo set up is taken down (torch warns otherwise)
        torch.distributed.destroy_process_group()
    return metrics


def _metrics(
    spec: ModelSpec,
    options: FinetuneOptions,
    splits: Splits,
    seeds: list[int],
    outcomes: dict[str, list[dict[str, Any]]],
    first: dict[str, Trained],
) -> dict[str, Any]:
    """metrics.json: each method over seeds, the saved model's full test report, and the verdict."""
    from zoo_core.training.evaluate import classification_report

    transfer_name = f"transfer ({options.strategy})"
    test = splits.test
    transfer = method_summary(outcomes[transfer_name])
    baselines = {name: method_summary(runs) for name, runs in outcomes.items() if name != transfer_name}
    return {
        "model": spec.name,
        "strategy": options.strategy,
        "classes": splits.train.classes,
        "chance": 1 / len(splits.train.classes),
        "sizes": {name: len(dataset.items) for name, dataset in splits.named().items()},
        "seeds": seeds,
        "transfer": transfer,
        "baselines": baselines,
        "verdict": verdict(transfer, baselines, len(test.items)),
        "test": classification_report(test.labels, first[transfer_name].test_scores, test.classes, test.items),
    }


def _write_artifacts(
    out: Path,
    spec: ModelSpec,
    record: Any,
    trained: TransferModel,
    splits: Splits,
    options: FinetuneOptions,
    data: Path,
    metrics: dict[str, Any],
    plugins: list[dict[str, Any]],
    *,
    device: torch.device,
) -> None:
    """Every file of the run folder but curves.png and last.pt; manifest.json records the `device` the
    run trained on beside its options (where ``--device auto`` went)."""
    from safetensors.torch import save_model

    save_model(trained, str(out / "model.safetensors"))
    write_json(out / "labels.json", splits.train.classes)
    write_json(out / "preprocessing.json", {"input": dataclasses.asdict(spec.input), "modality": spec.modality})
    write_splits(splits, out)
    write_json(out / "metrics.json", metrics)
    manifest = {
        "zoo": __version__,
        "model": spec.name,
        "revision": record.commit,
        "files": {file.name: file.sha256 for file in record.files},
        "data": str(data),
        "classes": splits.train.classes,  # labels.json's order, kept here too so that an edit of either is seen
        "data_fingerprint": splits.train.fingerprint(),
        "val_fingerprint": splits.val.fingerprint(),
        "test_fingerprint": splits.test.fingerprint(),
        "options": dataclasses.asdict(options),
        "device": device_name(device),
        "packages": package_versions(),
        "plugins": plugins,
    }
    write_json(out / "manifest.json", manifest)


def finetune_from_manifest(
    manifest: Path,
    out: Path,
    catalogue: Catalogue | None = None,
    resume: bool = False,
    placement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run again what a manifest describes (same model, data and options) into `out`; the model is looked up
    in `catalogue` (the CLI passes the one its ``--registry`` options build). `placement` (``--device``,
    ``--workers``: where, not what) replaces the manifest's, so a GPU run's manifest replays on a CPU."""

    def read(saved: dict[str, Any]) -> tuple[str, Path]:
        return saved["model"], Path(saved["data"])

    (model, data), options = replayed(manifest, placement, "a run's", read)
    return finetune(model, data, out, options, resume=resume, catalogue=catalogue)


def replayed(
    manifest: Path, placement: dict[str, Any] | None, what: str, read: Callable[[dict[str, Any]], Replayed]
) -> tuple[Replayed, FinetuneOptions]:
    """What `read` takes from manifest.json (model, data, tasks), and its options with `placement` in, checked
    to run here; a manifest that cannot give them is one line saying it is not `what` manifest.json."""
    try:
        saved = json.loads(manifest.read_text(encoding="utf-8"))
        found = read(saved)
        options = dataclasses.replace(FinetuneOptions(**saved["options"]), **(placement or {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        if isinstance(error, RunOptionError):
            raise
        raise RunOptionError(
            f"--from-manifest {manifest}: not {what} manifest.json ({type(error).__name__}: {error}); "
            "give the manifest.json of a run folder"
        ) from None
    replayable(manifest, options.device, options.precision)
    return found, options
