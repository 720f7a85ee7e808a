"""`zoo_core.export_onnx`: a fine-tuned run (or a catalogue model) as one self-describing ONNX file.

The file is checked with `onnx.checker`, carries its labels, preprocessing, source model, revision, sha256s
and zoo's version in `metadata_props` (`zoo_core.export_metadata`), and is proven, not assumed, to compute
what the PyTorch model does: onnxruntime and torch run the same inputs — the run's validation data, or for
a catalogue model seeded pictures drawn from its input spec — and the export fails, leaving no file, beyond
tolerance. Tolerances are relative to the logits' scale (the largest |logit| torch gives on those inputs):
fp32 within 1e-4 of it, with every top-1 answer equal where torch's two best logits are further apart than
twice that; fp16 within 1e-2 of it; int8 with the top-1 answers equal on ≥ 99% of the validation set.

The export is built in a staging folder and moved into place whole with the sha256 of every file in
``export.json`` (`zoo_core.export_folder`); the ONNX steps themselves are in `zoo_core.export_graph`.

The exporter (`choose_exporter`): the one asked for; else (``exporter="auto"``) the one a plugin chooses for
its models through the `onnx_exporter` hook, the report's reason then naming it (``plugin 'NAME': why``); else
zoo's for the modality (`EXPORTERS`): TorchScript (`dynamo=False`) for images and text alike, for the
reasons recorded there; `exporter="dynamo"` is there for models TorchScript cannot trace. A dynamic batch
axis (traced with batch 2), and a dynamic sequence axis for text.

The backbone's `prepare_export()` is called once per export, on the loaded model in eval mode, right
before tracing (never in training): what it switches to (eager attention, say) is what the file holds.

A multi-task run (`zoo_core.training.multitask`) exports as one file with one output per task, named by the
task, instead of ``logits``; each output is checked against torch's as a single output is, on the
validation items of every task, and the export fails when any one falls short. ``zoo.labels`` then names
each output's labels (`zoo_core.export_metadata`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from zoo_core.catalogue import Catalogue
from zoo_core.catalogue_sources import default_catalogue
from zoo_core.errors import ExportError, ModelNotFoundError
from zoo_core.export_folder import TOKENIZER_FILES, install_export, staging_folder
from zoo_core.export_graph import (
    convolutions,
    fuse_transformer,
    quantise_dynamic,
    quantise_static,
    set_metadata,
    store_optimisations,
    to_fp16,
    trace,
)
from zoo_core.export_metadata import write_metadata
from zoo_core.plugins import onnx_exporter
from zoo_core.specs import ImageInput, ModelSpec

__all__ = ["EXPORTERS", "ExportReport", "choose_exporter", "export_onnx", "spec_images"]

Precision = Literal["fp32", "fp16", "int8"]
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}  # of the logits' scale: the largest |logit| torch gives
INT8_AGREEMENT = 0.99  # int8: share of top-1 answers equal to torch's
PARITY_SAMPLES = 64  # fp32 and fp16: validation inputs compared
INT8_SAMPLES = 1000  # int8: the validation set, up to this many (99% of 64 would allow no miss at all)
CALIBRATION_SAMPLES = 128  # static int8: training inputs whose activation ranges set the scales
CATALOGUE_SAMPLES = 16  # a catalogue model: seeded pictures drawn from its input spec
FLOAT_CONVOLUTIONS = 3  # static int8 keeps up to this many convolutions nearest the input in float (a deep stem)
NEAR_TIE = 0.01  # two logits this close (of the logits' scale) are a call int8's rounding may reverse
BATCH = 32  # inputs per run of torch and onnxruntime, in the parity check and calibration
TRITON_MAX_BATCH = 64

EXPORTERS = {  # modality: (exporter, why), as bench/bench_onnx.py measures it with torch 2.14 on a 2-core CPU
    "image": (
        "torchscript",
        "folds BatchNorm and exports faster than dynamo (zoo's resnet50 export with its parity check: "
        "4.4 s against 8.0 s)",
    ),
    "text": (
        "torchscript",
        "onnxruntime's transformer optimiser fuses its attention (6 Attention nodes for MiniLM, none from "
        "dynamo's graph), and it exports faster (5.8 s against 9.5 s)",
    ),
}


@dataclass(frozen=True)
class ExportReport:
    """What an export proved; also written to the folder's ``export.json``."""

    path: str
    model: str
    max_abs_diff: float  # largest |onnxruntime - torch| over every logit compared
    top1_agreement: float  # share of inputs whose top-1 answer is torch's
    samples: int
    exporter: str  # the exporter and the steps after it: "torchscript, int8 static, optimized"
    exporter_reason: str
    tolerance: float | None = None  # the largest |diff| allowed (fp32, fp16); int8 is judged on agreement
    files: dict[str, str] = field(default_factory=dict)  # each file of the export: its sha256
    # a multi-task export: each output's max_abs_diff, top1_agreement and tolerance (the fields above are
    # those of the output furthest from its bound); empty for one output
    outputs: dict[str, dict[str, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Subject:
    """What is exported, and the real inputs that prove it."""

    model: Any  # a torch module that gives logits, or {task: logits}
    spec: ModelSpec
    outputs: dict[str, list[str]]  # each output's labels: {"logits": labels}, or {task: labels}
    validation: list[Any]  # image paths or tensors, or texts
    calibration: list[Any]  # training inputs, for static int8 (none for a catalogue model)
    transform: Any  # image path to tensor, or None
    manifest: dict[str, Any]  # the run's manifest.json; empty for a catalogue model


@dataclass(frozen=True)
class _Parity:
    max_abs_diff: float
    agreement: float  # share of top-1 answers equal to torch's
    decided: float  # the same, among inputs whose two best torch logits are more than 2 tolerances apart
    samples: int
    tolerance: float | None
    near_ties: int  # inputs whose two best torch logits are within NEAR_TIE of the logits' scale


def _subject(target: str | Path, precision: Precision, catalogue: Catalogue) -> _Subject:
    """A run folder (an existing path), else a catalogue model; a path that does not exist says so."""
    path = Path(target)
    if path.exists():
        if not (path / "manifest.json").is_file():
            raise ExportError(f"{path}: not a run folder (no manifest.json); give a folder `zoo finetune` wrote")
        return _from_run(path, catalogue)
    try:
        spec = catalogue.get(str(target))
    except ModelNotFoundError:
        separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
        if isinstance(target, Path) or any(separator in str(target) for separator in separators):
            raise ExportError(f"{target}: no such run folder (the path does not exist)") from None
        raise
    return _from_catalogue(spec, precision)


def _from_run(run: Path, catalogue: Catalogue) -> _Subject:
    """The trained TransferModel of a run folder, with its validation and training inputs: the items
    ``splits.json`` records, or for a run written before it, the split the run's options and seed give."""
    from zoo_core.training.data import load_dataset, stratified_split
    from zoo_core.training.saved import load_run

    saved = load_run(run, catalogue)
    if saved.tasks:  # every task's items: each output is checked on its own task's and on the others'
        from zoo_core.training.multitask_splits import joint

        splits = {name: task.splits for name, task in saved.tasks.items()}
        outputs = {name: task.classes for name, task in saved.tasks.items()}
        return _Subject(  # an item two tasks share (same bytes or text, as training joins them) counted once
            saved.model,
            saved.spec,
            outputs,
            joint(splits, "val").items.items[:INT8_SAMPLES],
            _calibration(joint(splits, "train").items.items),
            saved.transform,
            saved.manifest,
        )
    if saved.splits is not None:
        train, val = saved.splits.train, saved.splits.val
    else:
        options = saved.options
        dataset = load_dataset(Path(saved.manifest["data"]), saved.kind, saved.classes)
        if options["val"]:
            train, val = dataset, load_dataset(Path(options["val"]), dataset.kind, saved.classes)
        else:
            train, val = stratified_split(dataset, options["val_split"], options["seed"])
    return _Subject(
        saved.model,
        saved.spec,
        {"logits": saved.classes},
        val.items[:INT8_SAMPLES],
        _calibration(train.items),
        saved.transform,
        saved.manifest,
    )


def _calibration(items: list[Any]) -> list[Any]:
    """Training inputs for static int8's scales: up to `CALIBRATION_SAMPLES`, spread over `items`."""
    step = max(1, len(items) // CALIBRATION_SAMPLES)
    return items[::step][:CALIBRATION_SAMPLES]


def _from_catalogue(spec: ModelSpec, precision: Precision) -> _Subject:
    """A catalogue image model with its own classifier (refused when its checkpoint's classifier was dropped
    at load), checked on seeded pictures drawn from its input spec; they are no training data, so there is
    nothing to calibrate int8 on."""
    from zoo_core.loading import load_classifier

    if spec.modality == "embedding":
        raise ExportError(f"'{spec.name}' is a table of word vectors: there is no network to export")
    if not isinstance(spec.input, ImageInput):
        raise ExportError(
            f"'{spec.name}' has no classifier of its own: fine-tune it (zoo finetune), then export the run"
        )
    if precision == "int8":
        raise ExportError(
            f"'{spec.name}': int8 for a CNN calibrates on the run's training images: fine-tune it "
            "(zoo finetune), then export the run with --int8"
        )
    from zoo_core.label_sets import class_names

    images = list(spec_images(spec.input, CATALOGUE_SAMPLES))
    return _Subject(load_classifier(spec).eval(), spec, {"logits": class_names(spec)}, images, [], None, {})


def spec_images(image: ImageInput, count: int, seed: int = 0) -> Any:
    """`count` pictures as the network receives them, the same for a given seed: noise at several scales (as
    photos have detail at every scale) spanning the spec's value range, then its mean and std applied — a
    Caffe model gets mean-subtracted 0-255 pixels, a timm model normalised 0-1 ones."""
    import torch
    from torch.nn.functional import interpolate

    generator = torch.Generator().manual_seed(seed)
    size = (image.height, image.width)
    scales = [(4, 4), (16, 16), (64, 64), size]
    pixels = sum(
        interpolate(torch.rand(count, image.channels, *scale, generator=generator), size=size, mode="bilinear")
        for scale in scales
    ) / len(scales)
    low, high = image.value_range
    mean = torch.tensor(image.mean).view(1, -1, 1, 1)
    std = torch.tensor(image.std).view(1, -1, 1, 1)
    return (low + pixels * (high - low) - mean) / std


def _batches(subject: _Subject, items: list[Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each batch of `items` as torch inputs to the export graph, and as onnxruntime feeds."""
    import torch
    from PIL import Image

    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        if subject.spec.modality == "image":
            tensors = []
            for item in chunk:
                if isinstance(item, torch.Tensor):
                    tensors.append(item)
                    continue
                with Image.open(item) as image:
                    tensors.append(subject.transform(image))
            batch = torch.stack(tensors)
            yield (batch,), {"input": batch.numpy()}
        else:
            tokens = subject.model.backbone.tokenize(chunk)
            ids, mask = tokens["input_ids"], tokens["attention_mask"]
            yield (ids, mask), {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}


def choose_exporter(spec: ModelSpec, exporter: str) -> tuple[str, str]:
    """The exporter for `spec` and why: `exporter` unless it is "auto"; then a plugin's choice for the spec
    (the first `onnx_exporter` answer, its reason naming the plugin), else zoo's for the modality."""
    if exporter != "auto":
        return exporter, "asked for"
    chosen = onnx_exporter(spec)
    if chosen is None:
        return EXPORTERS[spec.modality]
    plugin, name, why = chosen
    return name, f"plugin '{plugin}': {why}"


def _graph(subject: _Subject) -> Any:
    """The module to export: the model itself for images; for text, one taking token ids and the mask; for
    a multi-task model, the same giving a tuple of each task's logits, in `outputs` order. The backbone is
    prepared for export here, once, right before `_build` traces it."""
    import torch

    getattr(subject.model, "backbone", subject.model).prepare_export()
    model, names = subject.model, list(subject.outputs)
    if names == ["logits"] and subject.spec.modality == "image":
        return model

    def ordered(result: Any) -> Any:
        return result if names == ["logits"] else tuple(result[name] for name in names)

    class TextLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            return ordered(self.model({"input_ids": input_ids, "attention_mask": attention_mask}))

    class TaskLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images: torch.Tensor) -> Any:
            return ordered(self.model(images))

    return (TextLogits() if subject.spec.modality == "text" else TaskLogits()).eval()


def export_onnx(
    target: str | Path,
    out: Path,
    *,
    precision: Precision = "fp32",
    optimize: bool = False,
    exporter: Literal["auto", "torchscript", "dynamo"] = "auto",
    triton: Path | None = None,
    catalogue: Catalogue | None = None,
) -> ExportReport:
    """Export a run folder (or a catalogue model name) to ``out/model.onnx`` and prove it with onnxruntime.

    `optimize` stores onnxruntime's graph optimisations in the file (for BERT-family models, its transformer
    fusions first); `precision` "fp16" converts weights and activations to float16 (inputs and outputs stay
    float32), "int8" quantises: dynamically for text models, statically for CNNs with scales calibrated on
    the run's training images. `triton` also writes a Triton Inference Server model repository there.
    `catalogue` resolves model names (the CLI passes the one its ``--registry`` options built).
    """
    subject = _subject(target, precision, catalogue or default_catalogue())
    chosen, reason = choose_exporter(subject.spec, exporter)
    created = not out.exists()
    staging = staging_folder(out)
    finished = False
    try:
        graph = _graph(subject)
        path = staging / "model.onnx"
        steps, parities = _build(graph, subject, path, chosen, precision, optimize)
        labels = subject.outputs.get("logits", subject.outputs)  # one output's list, or each task's
        set_metadata(path, write_metadata(subject.spec, labels, subject.manifest, precision))
        parity = _worst(parities, precision)
        if subject.spec.modality == "text":
            _copy_tokenizer(subject.spec, staging)
        report = ExportReport(
            path=str(out / "model.onnx"),
            model=subject.spec.name,
            max_abs_diff=parity.max_abs_diff,
            top1_agreement=parity.agreement,
            samples=parity.samples,
            exporter=", ".join(steps),
            exporter_reason=reason,
            tolerance=parity.tolerance,
            outputs=_per_output(parities) if "logits" not in parities else {},
        )
        files = install_export(staging, out, asdict(report))
        if triton is not None:
            write_triton_repository(triton, out / "model.onnx", subject)
        finished = True
        return ExportReport(**{**asdict(report), "files": files})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not finished and not any(out.iterdir()):
            out.rmdir()


def _build(
    graph: Any, subject: _Subject, path: Path, exporter: str, precision: Precision, optimize: bool
) -> tuple[list[str], dict[str, _Parity]]:
    """The ONNX file at `path`, each step in the order `zoo_core.export_graph` explains, and each output's
    parity."""
    example, feeds = next(_batches(subject, (subject.validation * 2)[:2]))  # batch 2 keeps the batch axis dynamic
    text = subject.spec.modality == "text"
    trace(graph, example, list(feeds), path, exporter, text, list(subject.outputs))
    items = subject.validation[: INT8_SAMPLES if precision == "int8" else PARITY_SAMPLES]
    reference = _reference(graph, subject, items)
    steps, parity = [exporter], None
    if optimize and text:
        fuse_transformer(path, _config(subject.spec))
    if optimize and precision != "int8":
        store_optimisations(path)
        steps.append("optimized")
    if precision == "fp16":
        to_fp16(path)
        steps.append("fp16")
    elif precision == "int8" and text:
        quantised = path.with_name("model.int8.onnx")
        quantise_dynamic(path, quantised)
        quantised.replace(path)
        steps.append("int8 dynamic")
    elif precision == "int8":
        int8_steps, parity = _int8_static(path, subject, items, reference)
        steps.extend(int8_steps)
    if optimize and precision == "int8":
        store_optimisations(path)
        steps.append("optimized")
        parity = None  # measured again below, on the file as stored
    parity = parity or _measure(path, subject, items, reference, precision)
    for output, measured in parity.items():
        _judge(measured, subject.spec.name, precision, steps, output)
    return steps, parity


def _worst(parities: dict[str, _Parity], precision: Precision) -> _Parity:
    """The output furthest from its bound: the lowest top-1 agreement for int8, else the largest |diff|
    relative to its tolerance."""
    if precision == "int8":
        return min(parities.values(), key=lambda parity: parity.agreement)
    return max(parities.values(), key=lambda parity: parity.max_abs_diff / (parity.tolerance or 1.0))


def _per_output(parities: dict[str, _Parity]) -> dict[str, dict[str, float | None]]:
    return {
        name: {"max_abs_diff": parity.max_abs_diff, "top1_agreement": parity.agreement, "tolerance": parity.tolerance}
        for name, parity in parities.items()
    }


def _int8_static(
    path: Path, subject: _Subject, items: list[Any], reference: Any
) -> tuple[list[str], dict[str, _Parity]]:
    """Static int8 of the float file at `path`, in place. Convolutions nearest the input are the most
    sensitive to int8 (they see raw pixels, and the error they make travels through the whole network), so
    when the check falls short they stay in float, one more at a time, up to `FLOAT_CONVOLUTIONS`."""
    calibration = [feeds for _, feeds in _batches(subject, subject.calibration)]
    first = convolutions(path)[:FLOAT_CONVOLUTIONS]
    quantised, best = path.with_name("model.int8.onnx"), path.with_name("model.best.onnx")
    chosen: tuple[int, dict[str, _Parity]] | None = None
    for kept in range(len(first) + 1):
        quantise_static(path, quantised, calibration, first[:kept])
        parity = _measure(quantised, subject, items, reference, "int8")
        agreement = _worst(parity, "int8").agreement
        if chosen is None or agreement > _worst(chosen[1], "int8").agreement:
            chosen = kept, parity
            quantised.replace(best)
        if agreement >= INT8_AGREEMENT:
            break
    assert chosen is not None
    best.replace(path)
    kept, parity = chosen
    return ["int8 static"] + ([f"first {kept} convolutions in float"] if kept else []), parity


def _reference(graph: Any, subject: _Subject, items: list[Any]) -> dict[str, Any]:
    """torch's logits for `items` by output, batch by batch as `_batches` yields them."""
    import numpy as np
    import torch

    names = list(subject.outputs)
    found: dict[str, list[Any]] = {name: [] for name in names}
    with torch.no_grad():
        for example, _ in _batches(subject, items):
            result = graph(*example)
            for name, logits in zip(names, result if isinstance(result, tuple) else (result,), strict=True):
                found[name].append(logits.numpy())
    return {name: np.concatenate(arrays) for name, arrays in found.items()}


def _measure(
    path: Path, subject: _Subject, items: list[Any], reference: dict[str, Any], precision: Precision
) -> dict[str, _Parity]:
    """onnxruntime's logits for `items` against torch's `reference`, output by output."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = list(subject.outputs)
    runs = [session.run(names, feeds) for _, feeds in _batches(subject, items)]
    return {
        name: _compared(np.concatenate([run[column] for run in runs]), reference[name], precision)
        for column, name in enumerate(names)
    }


def _compared(logits: Any, reference: Any, precision: Precision) -> _Parity:
    """One output's logits from onnxruntime against torch's."""
    import numpy as np

    scale = float(np.abs(reference).max())
    tolerance = TOLERANCE[precision] * scale if precision in TOLERANCE else None
    best_two = np.sort(reference, axis=1)[:, -2:]
    margin = best_two[:, 1] - best_two[:, 0]
    decided = margin > 2 * (tolerance or 0.0)
    same = logits.argmax(1) == reference.argmax(1)
    return _Parity(
        float(np.abs(logits - reference).max()),
        float(same.mean()),
        float(same[decided].mean()) if decided.any() else 1.0,
        len(same),
        tolerance,
        int((margin <= NEAR_TIE * scale).sum()),
    )


def _judge(parity: _Parity, name: str, precision: Precision, steps: list[str], output: str = "logits") -> None:
    """Refuse an export whose `output` is beyond its precision's tolerance (nothing of it is kept)."""
    if precision == "int8":
        failed, needed = parity.agreement < INT8_AGREEMENT, f"top-1 agreement ≥ {INT8_AGREEMENT:.0%}"
        needed += f"; torch itself nearly ties on {parity.near_ties} of them, its two best logits within "
        needed += f"{NEAR_TIE:.0%} of the largest |logit|"
        if parity.near_ties >= (1 - INT8_AGREEMENT) * parity.samples:  # enough to explain the miss alone
            needed += ": a head that barely separates its classes"
    else:
        assert parity.tolerance is not None
        failed = parity.max_abs_diff > parity.tolerance or (precision == "fp32" and parity.decided < 1.0)
        needed = f"logits within {parity.tolerance:.1e} ({TOLERANCE[precision]:.0e} of the largest |logit|)"
        needed += " and every answer that is not a tie equal" if precision == "fp32" else ""
    if failed:
        which = "" if output == "logits" else f" output '{output}'"
        raise ExportError(
            f"'{name}'{which}: onnxruntime ({', '.join(steps)}) differs from torch by {parity.max_abs_diff:.2e} on "
            f"logits, top-1 agreement {parity.agreement:.1%} on {parity.samples} inputs (needed: {needed}); "
            "the export was discarded"
        )


def write_triton_repository(repository: Path, model: Path, subject: _Subject) -> Path:
    """A Triton Inference Server model repository: ``NAME/1/model.onnx``, ``config.pbtxt``, ``labels.txt``
    (``TASK.labels.txt`` per output of a multi-task model); built in a staging folder and moved into place
    whole."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", subject.spec.name)
    staging = staging_folder(repository)
    try:
        folder = staging / name
        (folder / "1").mkdir(parents=True)
        for source in (model, model.with_name(model.name + ".data")):
            if source.exists():
                shutil.copyfile(source, folder / "1" / source.name)
        for file_name, labels in _label_files(subject).items():
            (folder / file_name).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        (folder / "config.pbtxt").write_text(_triton_config(name, subject), encoding="utf-8")
        shutil.rmtree(repository / name, ignore_errors=True)
        folder.replace(repository / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return repository / name


def _triton_config(name: str, subject: _Subject) -> str:
    _, feeds = next(_batches(subject, subject.validation[:1]))
    types = {"float32": "TYPE_FP32", "int64": "TYPE_INT64"}
    inputs = "".join(
        f'  {{ name: "{key}" data_type: {types[str(value.dtype)]} dims: [ {", ".join(_dims(key, value))} ] }},\n'
        for key, value in feeds.items()
    ).rstrip(",\n")
    files = dict(zip(subject.outputs, _label_files(subject), strict=True))
    outputs = ",\n".join(
        f'  {{ name: "{output}" data_type: TYPE_FP32 dims: [ {len(labels)} ] label_filename: "{files[output]}" }}'
        for output, labels in subject.outputs.items()
    )
    return (
        f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {TRITON_MAX_BATCH}\n'
        f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\ndynamic_batching {{ }}\n"
    )


def _label_files(subject: _Subject) -> dict[str, list[str]]:
    """Triton's label file of each output, in `outputs` order: labels.txt for one, TASK.labels.txt per task."""
    return {
        "labels.txt" if output == "logits" else f"{output}.labels.txt": labels
        for output, labels in subject.outputs.items()
    }


def _dims(name: str, value: Any) -> list[str]:
    """Per-sample dimensions (Triton adds the batch axis): fixed for images, -1 for a text's tokens."""
    return ["-1"] if name in ("input_ids", "attention_mask") else [str(size) for size in value.shape[1:]]


def _weights(spec: ModelSpec) -> Path:
    from zoo_core.download import download

    return download(spec)


def _config(spec: ModelSpec) -> dict[str, Any]:
    """A text model's config.json (its head count and width, for the transformer fusions)."""
    config: dict[str, Any] = json.loads((_weights(spec) / "config.json").read_text(encoding="utf-8"))
    return config


def _copy_tokenizer(spec: ModelSpec, folder: Path) -> None:
    source = _weights(spec)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, folder / name)
