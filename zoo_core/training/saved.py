"""A finished run folder, loaded: its trained model, classes, preprocessing and splits.

`zoo export` and `zoo evaluate` both read a run through `load_run`, so both measure the model training
saved, rebuilt the way training built it: the manifest's model with its ``--drop-last``, a new head of the
saved width, and ``model.safetensors`` loaded strictly (a missing or extra tensor is an error, not a silently
random layer). The image preprocessing is the one the run used: the transform the model's plugin builds
from the spec's input. ``manifest.json``'s options are checked as a new run's are. ``splits.json`` gives the
exact training, validation and test items, checked against the fingerprints ``manifest.json`` recorded (an
edited file, or images changed or moved since, are refused) and for a test split that shares items with the
others; a run written before zoo kept it has none (`SavedRun.splits` is None).

A multi-task run (`zoo_core.training.multitask`) loads as one `MultiTaskModel` ({task: logits}) with each
task's classes and splits in `SavedRun.tasks` (``labels.json`` is {task: classes}, each task's splits are
``tasks/<task>/splits.json`` checked against that task's fingerprints in ``manifest.json``); its `classes` is
empty and its `splits` None. `SavedRun.task_model` gives one task's backbone and head as a single-task model.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo_core.catalogue import Catalogue
from zoo_core.errors import RunFolderError, RunOptionError
from zoo_core.specs import ModelSpec
from zoo_core.training.adapt_options import check_adaptation
from zoo_core.training.data import dataset_kind
from zoo_core.training.splits import SPLITS_FILE, Splits, read_splits
from zoo_core.training.tasks import records_tasks

__all__ = ["SavedRun", "SavedTask", "load_run"]

RUN_FILES = ("manifest.json", "labels.json", "model.safetensors")  # what every finished run holds
AGAIN = "train the run again (zoo finetune … --out FOLDER)"
# the options loading and measuring the model read; the others have defaults (an older zoo wrote fewer)
NEEDED_OPTIONS = ("head", "drop_last", "batch_size")
FINGERPRINTS = {"train": "data_fingerprint", "val": "val_fingerprint", "test": "test_fingerprint"}  # in manifest.json


@dataclass(frozen=True)
class SavedTask:
    """One task of a multi-task run."""

    classes: list[str]  # labels.json's classes of the task, in the order of its head's outputs
    splits: Splits  # tasks/<task>/splits.json
    weight: float  # its loss weight in training


@dataclass(frozen=True)
class SavedRun:
    """A run folder's trained model and what it was trained and measured on."""

    folder: Path
    manifest: dict[str, Any]  # manifest.json: model, data, fingerprints, options, versions
    options: dict[str, Any]  # manifest.json's options, checked, with defaults for those an older zoo did not write
    spec: ModelSpec
    classes: list[str]  # labels.json: class names, in the order of the model's outputs
    model: Any  # the trained TransferModel, in eval mode
    transform: Any  # an image file's picture to the network's input, as in training; None for text
    splits: Splits | None  # splits.json; None for a run written before zoo kept it, or a multi-task run
    tasks: dict[str, SavedTask] = field(default_factory=dict)  # a multi-task run's tasks, in training order

    @property
    def kind(self) -> str:
        return dataset_kind(self.spec.modality)

    def task_model(self, name: str) -> Any:
        """A multi-task run's backbone under task `name`'s head: a TransferModel (shared, not copied)."""
        from zoo_core.training.model import TransferModel

        return TransferModel(self.model.backbone, self.model.heads[name]).eval()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunFolderError(f"{path}: unreadable ({type(error).__name__}: {error}); {AGAIN}") from None


def _manifest(folder: Path) -> dict[str, Any]:
    """manifest.json, with the fields loading reads checked for their type (its options by `_options`)."""
    path = folder / "manifest.json"
    manifest = _read_json(path)
    if not (
        isinstance(manifest, dict)
        and isinstance(manifest.get("model"), str)
        and (isinstance(manifest.get("tasks"), dict) if "tasks" in manifest else isinstance(manifest.get("data"), str))
        and isinstance(manifest.get("options"), dict)
    ):
        raise RunFolderError(f"{path}: not a run's manifest (model, data or tasks, and options are needed); {AGAIN}")
    entries = [("", manifest), *((f"tasks.{name}.", entry) for name, entry in manifest.get("tasks", {}).items())]
    for where, entry in entries:
        if not isinstance(entry, dict):
            raise RunFolderError(f"{path}: {where[:-1]} is {entry!r}, not a task's data and weight; {AGAIN}")
        for key in FINGERPRINTS.values():
            if not isinstance(entry.get(key, ""), str):
                raise RunFolderError(f"{path}: {where}{key} is {entry[key]!r}, not a fingerprint; {AGAIN}")
        classes = entry.get("classes", [])
        if not (isinstance(classes, list) and all(isinstance(name, str) for name in classes)):
            raise RunFolderError(f"{path}: {where}classes is {ascii(classes)[:80]}, not a list of class names; {AGAIN}")
    return manifest


def _fits(value: object, hint: Any) -> bool:
    """Whether a JSON value can be an option annotated `hint`."""
    if typing.get_origin(hint) is tuple:  # baseline: a list of names; an older zoo wrote one name or null
        names = value if isinstance(value, list) else [value] if value is not None else []
        return all(isinstance(name, str) for name in names)
    wanted = int | float if hint is float else hint
    return isinstance(value, wanted) and not isinstance(value, bool)


def _options(path: Path, options: dict[str, Any]) -> dict[str, Any]:
    """manifest.json's `options` checked as `FinetuneOptions` checks a new run's, completed with the defaults
    of those an older zoo did not write; a problem is one line naming the option."""
    from zoo_core.training.run import FinetuneOptions

    hints = typing.get_type_hints(FinetuneOptions)
    missing = [name for name in NEEDED_OPTIONS if name not in options]
    if missing:
        raise RunFolderError(f"{path}: options.{missing[0]} is missing; {AGAIN}")
    for name, value in options.items():
        if name not in hints:
            raise RunFolderError(f"{path}: options.{name} is not a run option; {AGAIN}")
        if not _fits(value, hints[name]):
            wanted = hints[name].__name__ if isinstance(hints[name], type) else str(hints[name])
            raise RunFolderError(f"{path}: options.{name} is {value!r}, not {wanted}; {AGAIN}")
    try:
        return dataclasses.asdict(FinetuneOptions(**options))
    except RunOptionError as error:  # it names the option as the command line spells it
        raise RunFolderError(f"{path}: its options cannot make a run ({error}); {AGAIN}") from None


def _classes(classes: Any, recorded: list[str] | None, where: str) -> list[str]:
    """labels.json's `classes` (`where` names the file, and the task of a multi-task run), checked against
    `recorded`, the manifest's copy (a list of names, `_manifest` checked): their order is the order of the
    model's outputs, so an edit of either would relabel the answers. A run written before manifests kept the
    classes records None."""
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(name, str) for name in classes)):
        raise RunFolderError(f"{where}: not a list of two or more class names; {AGAIN}")
    if recorded is not None and recorded != classes:
        if len(recorded) == len(classes):
            index = next(index for index, name in enumerate(classes) if name != recorded[index])
            differ = f"output {index} is {classes[index]!a} here, {recorded[index]!a} there"
        else:
            differ = f"{len(classes)} classes here, {len(recorded)} there"
        raise RunFolderError(
            f"{where}: not the classes manifest.json recorded ({differ}), whose order the model's outputs "
            f"follow; restore the file, or {AGAIN}"
        )
    return classes


def _model(folder: Path, spec: ModelSpec, options: dict[str, Any], classes: int | dict[str, int]) -> Any:
    """The model training saved: the backbone as the run cut it, and a head as wide as the saved one — one
    (a TransferModel, for `classes` classes) or one per task (a MultiTaskModel, `classes` {task: count})."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from zoo_core.loading import load
    from zoo_core.training.model import TransferModel, make_head, run_backbone
    from zoo_core.training.multitask_model import MultiTaskModel

    path = folder / "model.safetensors"
    kind = "mlp" if options["head"] == "mlp" else "linear"  # logreg is saved as the equivalent linear layer
    counts = classes if isinstance(classes, dict) else {"head": classes}
    prefixes = {name: f"heads.{name}" if isinstance(classes, dict) else name for name in counts}
    try:
        state = load_file(path)
        widths = {
            name: state[f"{prefix}.0.weight" if kind == "mlp" else f"{prefix}.weight"].shape[1]
            for name, prefix in prefixes.items()
        }
    except (SafetensorError, OSError, KeyError) as error:
        raise RunFolderError(f"{path}: no {kind} head in it ({type(error).__name__}: {error}); {AGAIN}") from None
    backbone = load(spec)
    # a run written before runs removed the backbone's own classifier (and, after --drop-last, the layers it
    # cut) holds those tensors too: the model never read them, so they are left out, not refused
    unused = {f"backbone.{name}" for name in run_backbone(backbone, options["drop_last"])}
    heads = {name: make_head(kind, widths[name], count) for name, count in counts.items()}
    model = MultiTaskModel(backbone, heads) if isinstance(classes, dict) else TransferModel(backbone, heads["head"])
    try:
        model.load_state_dict({key: value for key, value in state.items() if key not in unused})
    except RuntimeError as error:  # torch lists every missing, unexpected or misshapen tensor
        detail = " ".join(str(error).split())[:300]
        shape = ", ".join(f"{name} {count}" for name, count in counts.items()) if isinstance(classes, dict) else ""
        heads_of = f"{kind} heads for {shape} classes" if shape else f"a {kind} head for {classes} classes"
        raise RunFolderError(f"{path}: does not fit {spec.name} with {heads_of} ({detail}); {AGAIN}") from None
    return model.eval()


def _transform(spec: ModelSpec) -> Any:
    """The run's image preprocessing: the transform the model's plugin builds from the spec's input
    (`CheckReport.transform`), which is the one training took from checking its data. The plugin is asked
    with a blank batch of the input's shape, so the training data need not be at hand; the findings, which
    the run already heeded, are not used."""
    import numpy as np

    from zoo_core.compatibility import check
    from zoo_core.specs import ImageInput

    if spec.modality != "image":
        return None
    assert isinstance(spec.input, ImageInput)
    shape = (1, spec.input.channels, spec.input.height, spec.input.width)
    return check(spec, np.zeros(shape, dtype=np.float32)).transform


def _splits(folder: Path, kind: str, classes: list[str]) -> Splits | None:
    if not (folder / SPLITS_FILE).is_file():
        return None
    try:
        return read_splits(folder, kind, classes)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunFolderError(
            f"{folder / SPLITS_FILE}: not the run's splits ({type(error).__name__}: {error}); each split needs "
            f"items and labels among labels.json's classes; {AGAIN}"
        ) from None


def _recorded(splits: Splits, manifest: dict[str, Any]) -> bool:
    """Whether each split's fingerprint (its items, labels and, for images, each file's size and modification
    time) is the one manifest.json recorded; one an older manifest lacks is not compared."""
    try:
        return all(
            manifest[key] == dataset.fingerprint()
            for name, dataset in splits.named().items()
            if (key := FINGERPRINTS[name]) in manifest
        )
    except (OSError, TypeError, ValueError):  # an image gone, or an item that is no path
        return False


def _verify_splits(splits: Splits, manifest: dict[str, Any], folder: Path, run: Path | None = None) -> None:
    """Refuse a splits.json (in `folder`, of the run folder `run`, default `folder`) that is not the one the
    run wrote with its images as they were, or whose test split shares an image with the others: its test
    figure would not be the run's."""
    path = folder / SPLITS_FILE
    run = run or folder
    if not _recorded(splits, manifest):
        remedy = f"give DATA: zoo evaluate {run} DATA" if run == folder else AGAIN
        raise RunFolderError(f"{path}: does not match the run (edited, or its images changed or moved); {remedy}")
    if splits.test.kind != "image":  # texts may repeat legitimately, as when the run drew its splits
        return
    held_in = {Path(item).resolve() for item in splits.train.items + splits.val.items}
    shared = [item for item in splits.test.items if Path(item).resolve() in held_in]
    if shared:
        remedy = f"give DATA: zoo evaluate {run} DATA" if run == folder else AGAIN
        raise RunFolderError(
            f"{path}: {len(shared)} test item(s) are also training or validation items (the first {shared[0]}), "
            f"so its test figure is not a held-out one; {remedy}"
        )


def load_run(folder: Path, catalogue: Catalogue, *, verify_splits: bool = True) -> SavedRun:
    """The finished run in `folder`; its model is looked up in `catalogue`. Anything missing or malformed is
    a one-line `RunFolderError` naming the file. `verify_splits` False skips comparing splits.json with the
    manifest, for a caller that measures data of its own and reads the splits only to warn of overlap: a run
    whose images moved can still be measured on new data."""
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise RunFolderError(
            f"{folder}: not a finished run folder (no {', '.join(missing)}); give a folder `zoo finetune` wrote"
        )
    manifest = _manifest(folder)
    check_adaptation(manifest.get("adaptation"), str(folder / "manifest.json"))  # `zoo adapt`'s record
    options = _options(folder / "manifest.json", manifest["options"])
    if records_tasks(manifest):
        return _load_tasks(folder, manifest, options, catalogue, verify_splits)
    labels = folder / "labels.json"
    classes = _classes(_read_json(labels), manifest.get("classes"), str(labels))
    spec = catalogue.get(manifest["model"])
    splits = _splits(folder, dataset_kind(spec.modality), classes)
    if splits is not None and verify_splits:
        _verify_splits(splits, manifest, folder)
    model = _model(folder, spec, options, len(classes))
    return SavedRun(folder, manifest, options, spec, classes, model, _transform(spec), splits)


def _task(folder: Path, name: str, entry: Any, classes: Any, kind: str, verify_splits: bool) -> SavedTask:
    """One task of a multi-task run folder, its entry in manifest.json and labels.json checked."""
    from zoo_core.training.tasks import TASKS_FOLDER, check_task_name, check_weight

    manifest = folder / "manifest.json"
    try:
        check_task_name(name, str(manifest))
        weight = check_weight(entry.get("weight"), f"{manifest}: tasks.{name}.weight")
    except RunOptionError as error:
        raise RunFolderError(f"{error}; {AGAIN}") from None
    names = _classes(classes, entry.get("classes"), f"{folder / 'labels.json'}: {name}")
    where = folder / TASKS_FOLDER / name
    splits = _splits(where, kind, names)
    if splits is None:
        raise RunFolderError(
            f"{folder}: no {TASKS_FOLDER}/{name}/{SPLITS_FILE}, the items task {name} was trained, validated and "
            f"tested on, so its test split is unknown; copy the whole run folder again, or {AGAIN}"
        )
    if verify_splits:
        _verify_splits(splits, entry, where, folder)
    return SavedTask(names, splits, weight)


def _load_tasks(
    folder: Path, manifest: dict[str, Any], options: dict[str, Any], catalogue: Catalogue, verify_splits: bool
) -> SavedRun:
    """`load_run` of a multi-task run: a MultiTaskModel, and each task's classes and splits."""
    labels = _read_json(folder / "labels.json")
    tasks = manifest["tasks"]
    if not isinstance(labels, dict) or list(labels) != list(tasks) or len(tasks) < 2:
        raise RunFolderError(
            f"{folder / 'labels.json'}: not the classes of each of manifest.json's two or more tasks "
            f"({', '.join(map(str, tasks))}) as {{task: classes}}; {AGAIN}"
        )
    spec = catalogue.get(manifest["model"])
    kind = dataset_kind(spec.modality)
    found = {name: _task(folder, name, tasks[name], labels[name], kind, verify_splits) for name in tasks}
    model = _model(folder, spec, options, {name: len(task.classes) for name, task in found.items()})
    return SavedRun(folder, manifest, options, spec, [], model, _transform(spec), None, found)
