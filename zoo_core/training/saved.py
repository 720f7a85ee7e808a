"""A finished run folder, loaded: its trained model, classes, preprocessing and splits.

`zoo export` and `zoo evaluate` both read a run through `load_run`, so both measure the model training
saved, rebuilt the way training built it: the manifest's model with its ``--drop-last``, a new head of the
saved width, and ``model.safetensors`` loaded strictly (a missing or extra tensor is an error, not a silently
random layer). The image preprocessing is the one the run used: built, as the run built it, by checking
its training data. ``splits.json`` gives the exact training, validation and test items; a run written
before zoo kept it has none (`SavedRun.splits` is None).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.catalogue import Catalogue
from zoo_core.errors import RunFolderError
from zoo_core.specs import ModelSpec
from zoo_core.training.splits import SPLITS_FILE, Splits, read_splits

__all__ = ["SavedRun", "load_run"]

RUN_FILES = ("manifest.json", "labels.json", "model.safetensors")  # what every finished run holds
AGAIN = "train the run again (zoo finetune … --out FOLDER)"


@dataclass(frozen=True)
class SavedRun:
    """A run folder's trained model and what it was trained and measured on."""

    folder: Path
    manifest: dict[str, Any]  # manifest.json: model, data, options, versions
    spec: ModelSpec
    classes: list[str]  # labels.json: class names, in the order of the model's outputs
    model: Any  # the trained TransferModel, in eval mode
    transform: Any  # an image file's picture to the network's input, as in training; None for text
    splits: Splits | None  # splits.json; None for a run written before zoo kept it

    @property
    def kind(self) -> str:
        return _kind(self.spec)

    @property
    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = self.manifest["options"]
        return options


def _kind(spec: ModelSpec) -> str:
    """The kind of the model's datasets: "image", or "text" (for text encoders and word vectors alike)."""
    return "image" if spec.modality == "image" else "text"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunFolderError(f"{path}: unreadable ({type(error).__name__}: {error}); {AGAIN}") from None


def _manifest(folder: Path) -> dict[str, Any]:
    """manifest.json, with the fields loading needs checked for their type."""
    manifest: dict[str, Any] = _read_json(folder / "manifest.json")
    options = manifest.get("options") if isinstance(manifest, dict) else None
    if not (
        isinstance(options, dict)
        and isinstance(manifest.get("model"), str)
        and isinstance(manifest.get("data"), str)
        and isinstance(options.get("drop_last"), int)
        and options.get("head") in ("linear", "mlp", "logreg")
    ):
        raise RunFolderError(
            f"{folder / 'manifest.json'}: not a run's manifest (model, data, options.drop_last and options.head "
            f"are needed); {AGAIN}"
        )
    return manifest


def _classes(folder: Path) -> list[str]:
    classes = _read_json(folder / "labels.json")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(name, str) for name in classes)):
        raise RunFolderError(f"{folder / 'labels.json'}: not a list of two or more class names; {AGAIN}")
    return classes


def _model(folder: Path, spec: ModelSpec, options: dict[str, Any], classes: int) -> Any:
    """The TransferModel training saved: the backbone as the run cut it, a head as wide as the saved one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from zoo_core.loading import load
    from zoo_core.training.model import TransferModel, make_head

    path = folder / "model.safetensors"
    kind = "mlp" if options["head"] == "mlp" else "linear"  # logreg is saved as the equivalent linear layer
    try:
        state = load_file(path)
        width = state["head.0.weight" if kind == "mlp" else "head.weight"].shape[1]
    except (SafetensorError, OSError, KeyError) as error:
        raise RunFolderError(f"{path}: no {kind} head in it ({type(error).__name__}: {error}); {AGAIN}") from None
    backbone = load(spec)
    if options["drop_last"]:
        backbone.drop_last(options["drop_last"])
    model = TransferModel(backbone, make_head(kind, width, classes))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # torch lists every missing, unexpected or misshapen tensor
        detail = " ".join(str(error).split())[:300]
        raise RunFolderError(
            f"{path}: does not fit {spec.name} with a {kind} head for {classes} classes ({detail}); {AGAIN}"
        ) from None
    return model.eval()


def _transform(spec: ModelSpec, data: Path, folder: Path) -> Any:
    """The run's image preprocessing, built as the run built it: by checking its training data."""
    from zoo_core.compatibility import check

    if spec.modality != "image":
        return None
    if not data.exists():
        raise RunFolderError(
            f"{folder}: its training data {data} (manifest.json 'data') is gone; the image preprocessing is "
            "rebuilt by checking it, as the run did: put it back at that path"
        )
    return check(spec, data).transform


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


def load_run(folder: Path, catalogue: Catalogue) -> SavedRun:
    """The finished run in `folder`; its model is looked up in `catalogue`. Anything missing or malformed is
    a one-line `RunFolderError` naming the file."""
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise RunFolderError(
            f"{folder}: not a finished run folder (no {', '.join(missing)}); give a folder `zoo finetune` wrote"
        )
    manifest = _manifest(folder)
    classes = _classes(folder)
    spec = catalogue.get(manifest["model"])
    model = _model(folder, spec, manifest["options"], len(classes))
    transform = _transform(spec, Path(manifest["data"]), folder)
    return SavedRun(folder, manifest, spec, classes, model, transform, _splits(folder, _kind(spec), classes))
