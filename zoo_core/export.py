"""`zoo_core.export_onnx`: a fine-tuned run (or a catalogue model) as one self-describing ONNX file.

The file is checked with `onnx.checker`, carries its labels, preprocessing, source model, revision, sha256s
and zoo's version in `metadata_props`, and is proven, not assumed, to compute what the PyTorch model does:
onnxruntime and torch run the same real inputs (the run's validation data) and the export fails, leaving no
file, when logits differ by more than 1e-4 or the top-1 answers disagree.

Exporter: TorchScript (`dynamo=False`) for every family so far — it folds BatchNorm and is several times
faster to export on this CPU than the dynamo exporter; a dynamic batch axis (traced with batch 2), and a
dynamic sequence axis for text.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core._version import __version__
from zoo_core.errors import ExportError
from zoo_core.sources import default_catalogue
from zoo_core.specs import ModelSpec

__all__ = ["ExportReport", "export_onnx"]

OPSET = 17
TOLERANCE = 1e-4  # fp32, absolute, on logits
INT8_AGREEMENT = 0.99  # int8: share of top-1 answers equal to torch's
TRITON_MAX_BATCH = 64
PARITY_SAMPLES = 64
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@dataclass(frozen=True)
class ExportReport:
    path: str
    model: str
    max_abs_diff: float
    top1_agreement: float
    samples: int
    exporter: str


def _from_run(run: Path) -> tuple[Any, ModelSpec, list[str], list[Any], dict[str, Any]]:
    """The trained TransferModel of a run folder, its spec, labels, validation inputs and manifest."""
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
    val = (load_dataset(Path(options["val"]), dataset.kind, labels) if options["val"]
           else stratified_split(dataset, options["val_split"], options["seed"])[1])  # fmt: skip
    inputs = _inputs(spec, val.items[:PARITY_SAMPLES], check(spec, data).transform)
    return model.eval(), spec, labels, inputs, manifest


def _inputs(spec: ModelSpec, items: list[str], transform: Any) -> list[Any]:
    import torch
    from PIL import Image

    if spec.modality == "image":
        tensors = []
        for item in items:
            with Image.open(item) as image:
                tensors.append(transform(image))
        return [torch.stack(tensors)]
    return [items]


def _text_graph(model: Any) -> Any:
    """The text model as a module that takes token ids and the attention mask, and returns logits."""
    import torch

    class TextLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.model({"input_ids": input_ids, "attention_mask": attention_mask})
            return logits

    return TextLogits().eval()


def _metadata(spec: ModelSpec, labels: list[str], manifest: dict[str, Any] | None) -> dict[str, str]:
    return {
        "zoo.version": __version__,
        "zoo.model": spec.name,
        "zoo.modality": spec.modality,
        "zoo.labels": json.dumps(labels),
        "zoo.preprocessing": json.dumps(spec.to_dict()["input"]),
        "zoo.revision": str((manifest or {}).get("revision") or spec.source.revision or ""),
        "zoo.sha256": json.dumps((manifest or {}).get("files") or dict(spec.sha256)),
        "zoo.source": json.dumps(spec.to_dict()["source"]),
    }


def export_onnx(
    target: str | Path, out: Path, *, int8: bool = False, optimize: bool = False, triton: Path | None = None
) -> ExportReport:
    """Export a run folder (or a catalogue model name) to ``out/model.onnx`` and prove it with onnxruntime.

    `optimize` stores onnxruntime's extended graph optimisations (fusions) in the file; `int8` quantises the
    weights dynamically (text models; the top-1 answers must agree with torch on ≥ 99% of the validation
    inputs); `triton` also writes a Triton Inference Server model repository there.
    """
    import onnx
    import torch

    from zoo_core.loading import load

    run = Path(target)
    manifest = None
    if (run / "manifest.json").is_file():
        model, spec, labels, inputs, manifest = _from_run(run)
    else:
        spec = default_catalogue().get(str(target))
        if spec.modality != "image":
            raise ExportError(
                f"'{spec.name}' has no classifier of its own: fine-tune it (zoo finetune), then export the run"
            )
        model = load(spec).eval()
        labels = [str(index) for index in range(spec.output.num_classes or 0)]
        inputs = [torch.randn(4, *_image_shape(spec))] if spec.modality == "image" else [["a short example text"]]
    if spec.modality == "embedding":
        raise ExportError(f"'{spec.name}' is a table of word vectors: there is no network to export")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".export-"))
    try:
        graph, feeds, reference = _trace_inputs(model, spec, inputs)
        path = staging / "model.onnx"
        names = list(feeds)
        axes = {name: {0: "batch", 1: "sequence"} if spec.modality == "text" else {0: "batch"} for name in names}
        with warnings.catch_warnings():  # torch deprecates the TorchScript exporter; it is our choice, see above
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(graph, tuple(torch.from_numpy(value) for value in feeds.values()), str(path),
                              dynamo=False, opset_version=OPSET, input_names=names, output_names=["logits"],
                              dynamic_axes={**axes, "logits": {0: "batch"}})  # fmt: skip
        proto = onnx.load(str(path))
        for key, value in _metadata(spec, labels, manifest).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, str(path), save_as_external_data=False)  # one self-contained file (< 2 GB)
        if optimize:
            _optimise(path, proto)
        if int8:
            _quantise(path, spec, proto)
        report = _parity(path, feeds, reference, spec.name, int8)
        if spec.modality == "text":
            _copy_tokenizer(spec, staging)
        for item in staging.iterdir():
            item.replace(out / item.name)
        kind = ", ".join(["torchscript", *(["optimized"] if optimize else []), *(["int8 dynamic"] if int8 else [])])
        final = ExportReport(str(out / "model.onnx"), spec.name, report[0], report[1], report[2], kind)
        (out / "export.json").write_text(json.dumps(final.__dict__, indent=2), encoding="utf-8")
        if triton is not None:
            write_triton_repository(triton, out / "model.onnx", spec, labels, feeds)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _image_shape(spec: ModelSpec) -> tuple[int, int, int]:
    image = spec.input
    return (image.channels, image.height, image.width)  # type: ignore[union-attr]


def _trace_inputs(model: Any, spec: ModelSpec, inputs: list[Any]) -> tuple[Any, dict[str, Any], Any]:
    """The module to trace, its inputs as numpy arrays (batch ≥ 2 keeps the batch axis dynamic), and the
    torch logits to compare with."""
    import torch

    if spec.modality == "image":
        batch = inputs[0] if len(inputs[0]) >= 2 else torch.cat([inputs[0], inputs[0]])
        with torch.no_grad():
            reference = model(batch).numpy()
        return model, {"input": batch.numpy()}, reference
    backbone = model.backbone if hasattr(model, "backbone") else model
    texts = list(inputs[0]) if len(inputs[0]) >= 2 else [*inputs[0], *inputs[0]]
    tokens = backbone.tokenize(texts)
    feeds = {"input_ids": tokens["input_ids"].numpy(), "attention_mask": tokens["attention_mask"].numpy()}
    graph = _text_graph(model)
    with torch.no_grad():
        reference = graph(tokens["input_ids"], tokens["attention_mask"]).numpy()
    return graph, feeds, reference


def _optimise(path: Path, proto: Any) -> None:
    """Save onnxruntime's extended optimisations (constant folding, fusions) into the file. Extended, not
    all: the "all" level adds layouts specific to this CPU, which would not travel to another machine."""
    import onnx
    import onnxruntime

    optimised = path.with_name("model.optimized.onnx")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimised)
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    _save_with_metadata(onnx.load(str(optimised)), proto, path)
    optimised.unlink()


def _save_with_metadata(model: Any, proto: Any, path: Path) -> None:
    import onnx

    del model.metadata_props[:]
    model.metadata_props.extend(proto.metadata_props)
    onnx.save(model, str(path), save_as_external_data=False)


def _quantise(path: Path, spec: ModelSpec, proto: Any) -> None:
    """Dynamic int8 quantisation of the weights (MatMul/Gemm), keeping the metadata."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if spec.modality != "text":
        raise ExportError(f"'{spec.name}': --int8 is dynamic quantisation, for text models; CNNs need static "
                          "quantisation with calibration data, which zoo does not do yet")  # fmt: skip
    quantised = path.with_name("model.int8.onnx")
    quantize_dynamic(str(path), str(quantised), weight_type=QuantType.QInt8)
    _save_with_metadata(onnx.load(str(quantised)), proto, path)
    quantised.unlink()


def _parity(path: Path, feeds: dict[str, Any], reference: Any, name: str, int8: bool) -> tuple[float, float, int]:
    """Run onnxruntime on the inputs torch ran: fp32 within 1e-4 with every answer equal; int8 on ≥ 99%."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], feeds)[0]
    difference = float(np.abs(logits - reference).max())
    agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
    if (int8 and agreement < INT8_AGREEMENT) or (not int8 and (difference > TOLERANCE or agreement < 1.0)):
        limit = f"top-1 agreement ≥ {INT8_AGREEMENT:.0%}" if int8 else f"logits within {TOLERANCE:.0e}"
        raise ExportError(f"'{name}': onnxruntime differs from torch by {difference:.2e} on logits, top-1 "
                          f"agreement {agreement:.1%} (needed: {limit}); the export was discarded")  # fmt: skip
    return difference, agreement, len(logits)


def write_triton_repository(repository: Path, model: Path, spec: ModelSpec, labels: list[str],
                            feeds: dict[str, Any]) -> Path:  # fmt: skip
    """A Triton Inference Server model repository: ``NAME/1/model.onnx``, ``config.pbtxt``, ``labels.txt``."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", spec.name)
    folder = repository / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, folder / "1" / "model.onnx")
    (folder / "labels.txt").write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    types = {"float32": "TYPE_FP32", "int64": "TYPE_INT64"}
    inputs = "".join(
        f'  {{ name: "{key}" data_type: {types[str(value.dtype)]} dims: [ {", ".join(_dims(key, value))} ] }},\n'
        for key, value in feeds.items()
    ).rstrip(",\n")
    output = f'name: "logits" data_type: TYPE_FP32 dims: [ {len(labels)} ] label_filename: "labels.txt"'
    config = (f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {TRITON_MAX_BATCH}\n'
              f"input [\n{inputs}\n]\noutput [\n  {{ {output} }}\n]\ndynamic_batching {{ }}\n")  # fmt: skip
    (folder / "config.pbtxt").write_text(config, encoding="utf-8")
    return folder


def _dims(name: str, value: Any) -> list[str]:
    """Per-sample dimensions (Triton adds the batch axis): fixed for images, -1 for a text's tokens."""
    return ["-1"] if name in ("input_ids", "attention_mask") else [str(size) for size in value.shape[1:]]


def _copy_tokenizer(spec: ModelSpec, folder: Path) -> None:
    from zoo_core.download import download

    source = download(spec)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, folder / name)
