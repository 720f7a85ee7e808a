"""`zoo_core.export_onnx`: a fine-tuned run (or a catalogue model) as one self-describing ONNX file.

The file is checked with `onnx.checker`, carries its labels, preprocessing, source model, revision, sha256s
and zoo's version in `metadata_props`, and is proven, not assumed, to compute what the PyTorch model does:
onnxruntime and torch run the same real inputs (the run's validation data) and the export fails, leaving no
file, beyond tolerance: fp32 logits within 1e-4 with every top-1 answer equal, fp16 within 1e-2, int8 with
the top-1 answers equal on ≥ 99% of the validation set.

Exporter, per family (`EXPORTERS`): TorchScript (`dynamo=False`) for images and text alike, for the reasons
recorded there; `exporter="dynamo"` is there for models TorchScript cannot trace. A dynamic batch axis
(traced with batch 2), and a dynamic sequence axis for text.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from zoo_core._version import __version__
from zoo_core.errors import ExportError
from zoo_core.sources import default_catalogue
from zoo_core.specs import ModelSpec

__all__ = ["EXPORTERS", "ExportReport", "export_onnx"]

Precision = Literal["fp32", "fp16", "int8"]
OPSET = 17  # TorchScript exporter
DYNAMO_OPSET = 18  # the dynamo exporter's own (it converts to older opsets through a version converter)
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}  # absolute, on logits
INT8_AGREEMENT = 0.99  # int8: share of top-1 answers equal to torch's
PARITY_SAMPLES = 64  # fp32 and fp16: validation inputs compared
INT8_SAMPLES = 1000  # int8: the validation set, up to this many (99% of 64 would allow no miss at all)
CALIBRATION_SAMPLES = 128  # static int8: training inputs whose activation ranges set the scales
BATCH = 32  # inputs per run of torch and onnxruntime, in the parity check and calibration
SELF_CONTAINED_LIMIT = 2**31 - 2**26  # protobuf's 2 GB, less room for the graph: larger weights go beside it
TRITON_MAX_BATCH = 64
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")

EXPORTERS = {  # modality: (exporter, why), as bench/bench_onnx.py measures it with torch 2.14 on a 2-core CPU
    "image": ("torchscript", "folds BatchNorm and exports twice as fast as dynamo (zoo's resnet50 export with "
              "its parity check: 3.1 s against 6.6 s)"),
    "text": ("torchscript", "onnxruntime's transformer optimiser fuses its attention (6 Attention nodes for "
             "MiniLM, none from dynamo's graph), and it exports twice as fast (4.5 s against 10.5 s)"),
}  # fmt: skip


@dataclass(frozen=True)
class ExportReport:
    path: str
    model: str
    max_abs_diff: float
    top1_agreement: float
    samples: int
    exporter: str  # the exporter and the steps after it: "torchscript, optimized, int8 static"
    exporter_reason: str


@dataclass(frozen=True)
class _Subject:
    """What is exported, and the real inputs that prove it."""

    model: Any  # a torch module that gives logits
    spec: ModelSpec
    labels: list[str]
    validation: list[Any]  # image paths or tensors, or texts
    calibration: list[Any]  # training inputs, for static int8 (none for a catalogue model)
    transform: Any  # image path to tensor, or None
    manifest: dict[str, Any] | None


def _from_run(run: Path) -> _Subject:
    """The trained TransferModel of a run folder, with its validation and training inputs."""
    from safetensors.torch import load_file

    from zoo_core.compatibility import check
    from zoo_core.loading import load
    from zoo_core.training.data import load_dataset, stratified_split
    from zoo_core.training.model import TransferModel, make_head

    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    options = manifest["options"]
    spec = default_catalogue().get(manifest["model"])
    labels = json.loads((run / "labels.json").read_text(encoding="utf-8"))
    backbone = load(spec)
    if options["drop_last"]:
        backbone.drop_last(options["drop_last"])
    head = make_head("mlp" if options["head"] == "mlp" else "linear", backbone.feature_dim, len(labels))
    model = TransferModel(backbone, head)
    model.load_state_dict(load_file(run / "model.safetensors"))
    data = Path(manifest["data"])
    dataset = load_dataset(data, "image" if spec.modality == "image" else "text", labels)
    train, val = ((dataset, load_dataset(Path(options["val"]), dataset.kind, labels)) if options["val"]
                  else stratified_split(dataset, options["val_split"], options["seed"]))  # fmt: skip
    step = max(1, len(train.items) // CALIBRATION_SAMPLES)
    transform = check(spec, data).transform if spec.modality == "image" else None
    return _Subject(model.eval(), spec, labels, val.items[:INT8_SAMPLES], train.items[::step][:CALIBRATION_SAMPLES],
                    transform, manifest)  # fmt: skip


def _from_catalogue(name: str, precision: Precision) -> _Subject:
    """A catalogue image model with its own classifier; random images stand in for validation data, so
    there is nothing to calibrate int8 on."""
    import torch

    from zoo_core.loading import load

    spec = default_catalogue().get(name)
    if spec.modality == "embedding":
        raise ExportError(f"'{spec.name}' is a table of word vectors: there is no network to export")
    if spec.modality != "image":
        raise ExportError(
            f"'{spec.name}' has no classifier of its own: fine-tune it (zoo finetune), then export the run"
        )
    if precision == "int8":
        raise ExportError(f"'{spec.name}': int8 for a CNN calibrates on the run's training images: fine-tune it "
                          "(zoo finetune), then export the run with --int8")  # fmt: skip
    image = spec.input
    shape = (image.channels, image.height, image.width)  # type: ignore[union-attr]
    labels = [str(index) for index in range(spec.output.num_classes or 0)]
    return _Subject(load(spec).eval(), spec, labels, list(torch.randn(4, *shape)), [], None, None)


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


def _graph(subject: _Subject) -> Any:
    """The module to export: the model itself for images; for text, one taking token ids and the mask."""
    import torch

    getattr(subject.model, "backbone", subject.model).prepare_export()
    if subject.spec.modality == "image":
        return subject.model
    model = subject.model

    class TextLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.model({"input_ids": input_ids, "attention_mask": attention_mask})
            return logits

    return TextLogits().eval()


def _metadata(subject: _Subject, precision: Precision) -> dict[str, str]:
    spec, manifest = subject.spec, subject.manifest or {}
    return {
        "zoo.version": __version__,
        "zoo.model": spec.name,
        "zoo.modality": spec.modality,
        "zoo.labels": json.dumps(subject.labels),
        "zoo.preprocessing": json.dumps(spec.to_dict()["input"]),
        "zoo.precision": precision,
        "zoo.revision": str(manifest.get("revision") or spec.source.revision or ""),
        "zoo.sha256": json.dumps(manifest.get("files") or dict(spec.sha256)),
        "zoo.source": json.dumps(spec.to_dict()["source"]),
    }


def export_onnx(
    target: str | Path,
    out: Path,
    *,
    precision: Precision = "fp32",
    optimize: bool = False,
    exporter: Literal["auto", "torchscript", "dynamo"] = "auto",
    triton: Path | None = None,
) -> ExportReport:
    """Export a run folder (or a catalogue model name) to ``out/model.onnx`` and prove it with onnxruntime.

    `optimize` stores onnxruntime's graph optimisations in the file (for BERT-family models, its transformer
    fusions first); `precision` "fp16" converts weights and activations to float16 (inputs and outputs stay
    float32), "int8" quantises: dynamically for text models, statically for CNNs with scales calibrated on
    the run's training images. `triton` also writes a Triton Inference Server model repository there.
    """
    run = Path(target)
    subject = _from_run(run) if (run / "manifest.json").is_file() else _from_catalogue(str(target), precision)
    chosen, reason = EXPORTERS[subject.spec.modality] if exporter == "auto" else (exporter, "asked for")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".export-"))
    try:
        graph = _graph(subject)
        path = staging / "model.onnx"
        _export(graph, subject, path, chosen)
        steps = [chosen]
        if optimize:
            _optimise(path, subject)
            steps.append("optimized")
        if precision == "fp16":
            _to_fp16(path)
            steps.append("fp16")
        elif precision == "int8":
            _quantise(path, subject, staging)
            steps.append("int8 dynamic" if subject.spec.modality == "text" else "int8 static")
        _save(_with_metadata(path, _metadata(subject, precision)), path)
        difference, agreement, samples = _parity(path, graph, subject, precision)
        if subject.spec.modality == "text":
            _copy_tokenizer(subject.spec, staging)
        for item in staging.iterdir():
            item.replace(out / item.name)
        report = ExportReport(str(out / "model.onnx"), subject.spec.name, difference, agreement, samples,
                              ", ".join(steps), reason)  # fmt: skip
        (out / "export.json").write_text(json.dumps(report.__dict__, indent=2), encoding="utf-8")
        if triton is not None:
            write_triton_repository(triton, out / "model.onnx", subject)
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export(graph: Any, subject: _Subject, path: Path, exporter: str) -> None:
    """torch.onnx.export with a dynamic batch axis (and sequence axis for text), then `onnx.checker`."""
    import onnx
    import torch

    example, feeds = next(_batches(subject, (subject.validation * 2)[:2]))  # batch 2 keeps the batch axis dynamic
    names = list(feeds)
    text = subject.spec.modality == "text"
    options: dict[str, Any] = {"input_names": names, "output_names": ["logits"]}
    if exporter == "dynamo":
        if importlib.util.find_spec("onnxscript") is None:
            raise ExportError("the dynamo exporter needs onnxscript ≥ 0.6: pip install 'zoo-tl[onnx]', or leave "
                              "the exporter to zoo's choice")  # fmt: skip
        batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
        shapes = tuple({0: batch, 1: sequence} if text else {0: batch} for _ in names)
        torch.onnx.export(graph, example, str(path), dynamo=True, opset_version=DYNAMO_OPSET, verbose=False,
                          external_data=False, dynamic_shapes=shapes, **options)  # fmt: skip
    else:
        axes = {name: {0: "batch", 1: "sequence"} if text else {0: "batch"} for name in names}
        with warnings.catch_warnings():  # torch deprecates the TorchScript exporter; it is our choice, see above
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(graph, example, str(path), dynamo=False, opset_version=OPSET,
                              dynamic_axes={**axes, "logits": {0: "batch"}}, **options)  # fmt: skip
    _save(onnx.load(str(path)), path)
    onnx.checker.check_model(str(path))


def _save(model: Any, path: Path) -> None:
    """One self-contained file, or, for weights above protobuf's 2 GB limit, the graph with its weights in
    ``model.onnx.data`` beside it."""
    import onnx

    weights = sum(len(tensor.raw_data) for tensor in model.graph.initializer)
    external = weights > SELF_CONTAINED_LIMIT
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    onnx.save(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True, location=data.name)


def _with_metadata(path: Path, metadata: dict[str, str]) -> Any:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def _optimise(path: Path, subject: _Subject) -> None:
    """onnxruntime's transformer fusions for BERT-family models (attention, skip layer norm, bias GELU),
    then its extended graph optimisations, saved into the file. Extended, not all: the "all" level adds
    layouts specific to this CPU, which would not travel to another machine."""
    import onnx
    import onnxruntime

    if subject.spec.modality == "text":
        from onnxruntime.transformers.optimizer import optimize_model

        config = json.loads((_weights(subject.spec) / "config.json").read_text(encoding="utf-8"))
        fused = optimize_model(str(path), model_type="bert", num_heads=config.get("num_attention_heads", 0),
                               hidden_size=config.get("hidden_size", 0), opt_level=0)  # fmt: skip
        _save(fused.model, path)
    optimised = path.with_name("model.optimized.onnx")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimised)
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    _save(onnx.load(str(optimised)), path)
    optimised.unlink()


def _to_fp16(path: Path) -> None:
    """Weights and activations in float16 (onnxruntime's converter); inputs and outputs stay float32, so
    `predict` feeds the file as before."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    _save(convert_float_to_float16(onnx.load(str(path)), keep_io_types=True), path)


def _quantise(path: Path, subject: _Subject, staging: Path) -> None:
    """int8 with per-channel weight scales (on MiniLM they halve the logit error of per-tensor ones): dynamic
    for text (activations quantised at run time), static QDQ for CNNs, with activation scales calibrated on
    the run's training images."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quantised = staging / "model.int8.onnx"
    if subject.spec.modality == "text":
        quantize_dynamic(str(path), str(quantised), per_channel=True, weight_type=QuantType.QInt8)
    else:
        feeds = [batch for _, batch in _batches(subject, subject.calibration)]

        class Calibration(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self.batches = iter(feeds)

            def get_next(self) -> dict[str, Any] | None:
                return next(self.batches, None)

        prepared = staging / "model.prepared.onnx"
        quant_pre_process(str(path), str(prepared))  # shape inference and folding, as the quantiser expects
        quantize_static(str(prepared), str(quantised), Calibration(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
        prepared.unlink()
    _save(onnx.load(str(quantised)), path)
    quantised.unlink()


def _parity(path: Path, graph: Any, subject: _Subject, precision: Precision) -> tuple[float, float, int]:
    """Run onnxruntime on the validation inputs torch runs, and fail beyond the precision's tolerance."""
    import numpy as np
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    items = subject.validation[: INT8_SAMPLES if precision == "int8" else PARITY_SAMPLES]
    differences, agreements = [], []
    for example, feeds in _batches(subject, items):
        with torch.no_grad():
            reference = graph(*example).numpy()
        logits = session.run(["logits"], feeds)[0]
        differences.append(float(np.abs(logits - reference).max()))
        agreements.extend(logits.argmax(1) == reference.argmax(1))
    difference, agreement = max(differences), float(np.mean(agreements))
    if precision == "int8":
        failed, needed = agreement < INT8_AGREEMENT, f"top-1 agreement ≥ {INT8_AGREEMENT:.0%}"
    else:
        limit = TOLERANCE[precision]
        failed = difference > limit or (precision == "fp32" and agreement < 1.0)
        needed = f"logits within {limit:.0e}" + (" and every answer equal" if precision == "fp32" else "")
    if failed:
        raise ExportError(f"'{subject.spec.name}': onnxruntime ({precision}) differs from torch by {difference:.2e} "
                          f"on logits, top-1 agreement {agreement:.1%} (needed: {needed}); the export was "
                          "discarded")  # fmt: skip
    return difference, agreement, len(agreements)


def write_triton_repository(repository: Path, model: Path, subject: _Subject) -> Path:
    """A Triton Inference Server model repository: ``NAME/1/model.onnx``, ``config.pbtxt``, ``labels.txt``."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", subject.spec.name)
    folder = repository / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    for source in (model, model.with_name(model.name + ".data")):
        if source.exists():
            shutil.copyfile(source, folder / "1" / source.name)
    (folder / "labels.txt").write_text("".join(f"{label}\n" for label in subject.labels), encoding="utf-8")
    _, feeds = next(_batches(subject, subject.validation[:1]))
    types = {"float32": "TYPE_FP32", "int64": "TYPE_INT64"}
    inputs = "".join(
        f'  {{ name: "{key}" data_type: {types[str(value.dtype)]} dims: [ {", ".join(_dims(key, value))} ] }},\n'
        for key, value in feeds.items()
    ).rstrip(",\n")
    output = f'name: "logits" data_type: TYPE_FP32 dims: [ {len(subject.labels)} ] label_filename: "labels.txt"'
    config = (f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {TRITON_MAX_BATCH}\n'
              f"input [\n{inputs}\n]\noutput [\n  {{ {output} }}\n]\ndynamic_batching {{ }}\n")  # fmt: skip
    (folder / "config.pbtxt").write_text(config, encoding="utf-8")
    return folder


def _dims(name: str, value: Any) -> list[str]:
    """Per-sample dimensions (Triton adds the batch axis): fixed for images, -1 for a text's tokens."""
    return ["-1"] if name in ("input_ids", "attention_mask") else [str(size) for size in value.shape[1:]]


def _weights(spec: ModelSpec) -> Path:
    from zoo_core.download import download

    return download(spec)


def _copy_tokenizer(spec: ModelSpec, folder: Path) -> None:
    source = _weights(spec)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, folder / name)
