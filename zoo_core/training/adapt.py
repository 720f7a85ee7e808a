"""`zoo_core.training.adapt.adapt`: a trained run adapted to unlabelled target data, written as a new run.

The target is an image folder (flat, or with subfolders whose names are ignored) or a text file (its text
column; a label column is ignored). The method (`adapt_methods`: adabn, tent, pseudo) changes a copy of the
run's network; labelled target data, when given, is only measured, before and after, never trained on.

The methods act only on the layers the run trained (the groups its strategy opened: none for features, the
last ones for finetune, all for full); a run that trained no normalisation layer refuses adabn and tent. A
multi-task run is refused (its heads share the backbone a method would change), and so is an --out that is,
holds or lies inside RUN, or holds TARGET or --labelled.

The adapted run is a run: `load_run` reads it, `zoo export` and `zoo evaluate` take it. Its folder holds the
source run's labels.json, preprocessing.json and splits.json, the new model.safetensors, metrics.json (what
the adaptation measured) and manifest.json: the source run's, with "adaptation" added (method and options,
the device it ran on, the target's path, item count and fingerprint, the source run's folder and its
model.safetensors' sha256, zoo's version, and the source run's own "adaptation" when it was adapted too;
`check_adaptation` checks it on loading). It is written whole (`staged_run`).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_core._version import __version__
from zoo_core.catalogue import Catalogue
from zoo_core.catalogue_sources import default_catalogue
from zoo_core.errors import DataError, DataWarning, RunOptionError
from zoo_core.hashing import file_digest
from zoo_core.training.adapt_options import AdaptOptions
from zoo_core.training.data import Dataset, load_dataset, same_text
from zoo_core.training.saved import SavedRun, load_run
from zoo_core.training.splits import SPLITS_FILE

if TYPE_CHECKING:
    from zoo_core.training.adapt_methods import Target

__all__ = ["adapt", "read_target"]

COPIED = ("labels.json", "preprocessing.json", SPLITS_FILE)  # the source run's, as they are
UNLABELLED = "target"  # the one class of the target's placeholder labels


def read_target(target: Path, kind: str) -> Dataset:
    """The unlabelled target: every readable image of a folder (flat or in subfolders; an unreadable one is
    skipped with one warning) or every non-empty text of a file, each labelled 0 of one placeholder class."""
    from zoo_core.image_check import labelled_files
    from zoo_core.images import read_headers
    from zoo_core.textdata import read_texts

    if not target.exists():
        raise DataError(f"{target}: not found; give the target's image folder or text file")
    if kind == "image":
        if not target.is_dir():
            raise DataError(f"{target}: a run on images adapts to an image folder (flat or with subfolders)")
        readable, skipped = read_headers([path for path, _ in labelled_files(target)])
        if skipped:
            warnings.warn(f"{target}: skipped {len(skipped)} unreadable image(s), the first {skipped[0]}", stacklevel=2)
        items = [str(path) for path in readable]
    else:
        if not target.is_file():
            raise DataError(f"{target}: a run on texts adapts to a text file (CSV, JSONL or one text a line)")
        items = [text for text in read_texts(target).texts if text.strip()]
    if len(items) < 2:
        raise DataError(f"{target}: {len(items)} usable item(s); adaptation needs at least 2, and gains from hundreds")
    return Dataset(kind, items, [0] * len(items), [UNLABELLED])


def _labelled(labelled: Path, saved: SavedRun, target: Dataset) -> Dataset:
    """The labelled target, in the run's classes; a warning when it shares items with the unlabelled target
    (adaptation then saw those items, unlabelled, and the figure is not a held-out one). Images are compared
    by content (sha256), so a copy under another name counts; texts as `same_text` compares them."""
    dataset = load_dataset(labelled, saved.kind, saved.classes)
    if not dataset.items:
        raise DataError(f"{labelled}: no labelled items to measure")
    key = (lambda item: file_digest(Path(item))) if dataset.kind == "image" else same_text
    shared = {key(item) for item in dataset.items} & {key(item) for item in target.items}
    if shared:
        warnings.warn(
            f"{labelled}: {len(shared)} of its {len(dataset.items)} items are in the target too, so the accuracy "
            "after adaptation is not a held-out figure; measure on items kept out of the target",
            DataWarning,
            stacklevel=3,
        )
    return dataset


def _scores(saved: SavedRun, dataset: Dataset, options: AdaptOptions) -> Any:
    """The run's class probabilities for `dataset`, on the device the model is on, at the options' precision
    and fed by their workers."""
    from zoo_core.training.evaluate import predict_scores

    return predict_scores(
        saved.model, dataset, saved.transform, options.batch_size, precision=options.precision, workers=options.workers
    )


def _accuracy(saved: SavedRun, dataset: Dataset, options: AdaptOptions) -> float:
    import numpy as np

    scores = _scores(saved, dataset, options)
    return float(np.mean(scores.argmax(axis=1) == np.asarray(dataset.labels)))


def _refuse_out(out: Path, run: Path, data: dict[str, Path | None]) -> None:
    """Refuse an --out that is RUN, lies inside it or holds it, or holds TARGET or --labelled (`data`): the
    adapted run replaces --out whole, which would delete or corrupt them. Paths are compared resolved."""
    resolved = out.resolve()
    if resolved.is_relative_to(run) or run.is_relative_to(resolved):
        where = "is" if resolved == run else "is inside" if resolved.is_relative_to(run) else "holds"
        raise RunOptionError(
            f"--out {out} {where} the run being adapted ({run}); write the adapted run to a folder outside it"
        )
    for option, path in data.items():
        if path is not None and path.is_relative_to(resolved):
            raise RunOptionError(
                f"--out {out} holds {option} {path}, which writing the adapted run would delete; write the adapted "
                "run to a folder outside it"
            )


def _open_trained(saved: SavedRun) -> None:
    """Leave trainable, in `saved.model`, only the layer groups the run trained, frozen as its strategy froze
    them (`freeze_for_strategy`): the methods act on those alone."""
    from zoo_core.training.strategies import freeze_for_strategy

    freeze_for_strategy(saved.model.backbone, saved.options["strategy"], saved.options["unfreeze"])


def _refuse_method(saved: SavedRun, method: str) -> None:
    """A method that cannot change the run's model, refused in one line naming what to do instead; the run's
    trained layers already opened (`_open_trained`)."""
    from zoo_core.training.adapt_methods import BATCHNORM, NORMS, trainable_norms

    name = saved.spec.name
    if saved.spec.modality == "embedding":
        raise RunOptionError(
            f"--method {method}: {name} is word vectors, which have no network to adapt (the run trained only "
            f"its head); label some target data and train a new run: zoo finetune {name} TARGET_LABELLED --out DIR"
        )
    kinds = BATCHNORM if method == "adabn" else NORMS
    if method == "adabn" and not any(isinstance(layer, BATCHNORM) for layer in saved.model.modules()):
        raise RunOptionError(
            f"--method adabn: {name} has no BatchNorm layer (its normalisation, if any, is LayerNorm or GroupNorm, "
            "which keep no statistics to re-estimate); use --method tent or --method pseudo"
        )
    if method == "tent" and not any(isinstance(layer, NORMS) for layer in saved.model.modules()):
        raise RunOptionError(f"--method tent: {name} has no normalisation layer to adapt; use --method pseudo")
    if method != "pseudo" and not trainable_norms(saved.model, kinds):
        strategy = saved.options["strategy"]
        opened = f" --unfreeze {saved.options['unfreeze']}" if strategy == "finetune" else ""
        raise RunOptionError(
            f"--method {method}: the run trained none of {name}'s normalisation layers (--strategy {strategy}"
            f"{opened}: its head learned under their pretraining statistics, which adapting them would break); use "
            "--method pseudo, which trains what the run trained, or adapt a run trained with --strategy finetune "
            "or full"
        )


def _pseudo_labels(saved: SavedRun, plan: Target) -> tuple[Dataset, dict[str, Any]]:
    """The target items the run is sure of, labelled with its predictions, made with the statistics of its
    trained BatchNorms fixed on the target (AdaBN first); and their count for metrics.json."""
    from zoo_core.training import adapt_methods

    options, target = plan.options, plan.dataset
    assert options.threshold is not None  # `AdaptOptions.for_method` filled it
    adapt_methods.adabn(saved.model, plan)
    scores = _scores(saved, target, options)
    kept, labels = adapt_methods.confident(scores, options.threshold)
    if len(kept) < 2:
        best = float(scores.max(axis=1).max())
        raise DataError(
            f"--method pseudo: {len(kept)} of the {len(target.items)} target items are predicted with "
            f"confidence {options.threshold} or more (the highest: {best:.3f}); lower --threshold, or use "
            "--method adabn"
        )
    pseudo_labelled = Dataset(target.kind, [target.items[i] for i in kept], labels, saved.classes)
    return pseudo_labelled, {"kept": len(kept), "of": len(target.items), "threshold": options.threshold}


def _adapted(saved: SavedRun, method: str, plan: Target) -> dict[str, Any]:
    """Change `saved.model` (on the plan's device) in place by `method` on the plan's target; returns what the
    method measured."""
    from zoo_core.training import adapt_methods

    found: dict[str, Any] = {}
    if method == "adabn":
        adapt_methods.adabn(saved.model, plan)
        found["batchnorms"] = len(adapt_methods.trainable_norms(saved.model, adapt_methods.BATCHNORM))
    elif method == "tent":
        found["curve"] = adapt_methods.tent(saved.model, plan)
    else:
        pseudo_labelled, found["pseudo_labels"] = _pseudo_labels(saved, plan)
        found["curve"] = adapt_methods.pseudo(saved.model, plan, pseudo_labelled)
    return found


def _adaptation(
    saved: SavedRun,
    method: str,
    options: AdaptOptions,
    device: str,
    target: Path,
    dataset: Dataset,
    labelled: Path | None,
) -> dict[str, Any]:
    """manifest.json's "adaptation": what was done, where, to which run, on which data (`check_adaptation`
    checks it when the run is loaded)."""
    return {
        "method": method,
        "options": dataclasses.asdict(options),
        "device": device,
        "target": str(target),
        "target_items": len(dataset.items),
        "target_fingerprint": dataset.fingerprint(),
        "labelled": str(labelled) if labelled is not None else None,
        "source_run": str(saved.folder),
        "source_model_sha256": file_digest(saved.folder / "model.safetensors"),
        "zoo": __version__,
        "previous": saved.manifest.get("adaptation"),
    }


def adapt(
    run: Path,
    target: Path,
    out: Path,
    method: str = "adabn",
    options: AdaptOptions | None = None,
    labelled: Path | None = None,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """Adapt the finished run in `run` to the unlabelled `target` by `method` and write the adapted run to
    `out`; returns its metrics (and writes them to metrics.json). `labelled` target data, in the run's classes,
    is measured before and after (accuracy), never trained on. Nothing is written until the adapted model is
    ready (a refusal, or a failure on the way, leaves no trace); then `out` is locked and replaced whole, and
    a second writer of `out` at that moment raises `RunFolderBusyError`."""
    from safetensors.torch import save_model

    from zoo_core.training.adapt_methods import Target
    from zoo_core.training.device import device_name, fitting_memory, on_device, resolve_device
    from zoo_core.training.run import pinned_threads, seed_everything
    from zoo_core.training.runfolder import staged_run, write_json

    options = (options or AdaptOptions()).for_method(method)
    run, target, out = run.resolve(), target.resolve(), out.absolute()
    labelled = labelled.resolve() if labelled is not None else None
    _refuse_out(out, run, {"TARGET": target, "--labelled": labelled})
    device = resolve_device(options.device, options.precision)
    saved = load_run(run, catalogue or default_catalogue(), verify_splits=False)
    if saved.tasks:
        raise RunOptionError(
            f"{run}: a multi-task run ({', '.join(saved.tasks)}), which zoo adapt does not adapt (its heads share "
            "the backbone it would change); train the task alone (zoo finetune NAME DATA --out DIR) and adapt that"
        )
    _open_trained(saved)
    _refuse_method(saved, method)
    dataset = read_target(target, saved.kind)
    labelled_set = _labelled(labelled, saved, dataset) if labelled is not None else None
    adaptation = _adaptation(saved, method, options, device_name(device), target, dataset, labelled)
    metrics: dict[str, Any] = {"method": method, "model": saved.spec.name, "target_items": len(dataset.items)}
    metrics["device"] = adaptation["device"]
    plan = Target(dataset, saved.transform, options, device)
    with pinned_threads(options.threads), on_device(saved.model, device), fitting_memory(device, options.batch_size):
        seed_everything(options.seed)
        started = time.perf_counter()
        before = _accuracy(saved, labelled_set, options) if labelled_set is not None else None
        metrics |= _adapted(saved, method, plan)
        if labelled_set is not None:
            after = _accuracy(saved, labelled_set, options)
            metrics["labelled"] = {"items": len(labelled_set.items), "accuracy_before": before, "accuracy_after": after}
        metrics["seconds"] = round(time.perf_counter() - started, 2)
    saved.model.eval()
    with staged_run(out) as staging:
        save_model(saved.model, str(staging / "model.safetensors"))
        for name in COPIED:
            if (run / name).is_file():
                shutil.copy2(run / name, staging / name)
        write_json(staging / "metrics.json", metrics)
        write_json(staging / "manifest.json", {**saved.manifest, "adaptation": adaptation})
    return metrics
