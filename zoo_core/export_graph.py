"""The steps an export applies to its ONNX file: trace, save, fuse, store optimisations, fp16, int8, metadata.

Each step reads and rewrites one ``model.onnx`` in the export's staging folder, and everything a step writes
on the side goes into that folder too (or into onnxruntime's own temporary folders, which it removes): no
step writes to the current directory. The order matters and `zoo_core.export` keeps it:

- fp32 and fp16: transformer fusions (text), stored optimisations, then fp16 — onnxruntime's CPU session
  would otherwise store casts to float32 around every fp16 node;
- int8: transformer fusions (text), quantisation, then stored optimisations — quantising an optimised graph
  fails, in shape inference for CNNs ("Incomplete symbolic shape inference") and for fused BERT nodes,
  whose output types onnx cannot infer ("Unable to find data type for weight_name").

int8 weights are quantised per channel to 7 bits (``reduce_range``): on x86 CPUs without VNNI, onnxruntime
multiplies uint8 activations by int8 weights with an instruction that adds two products in 16 bits and
saturates beyond 32,767; two products of 255 and 127 reach 64,770, two of 255 and 64 stay at 32,640. The same file
then computes the same logits on every CPU (with 8-bit weights, the quickstart model's int8 export agreed
with torch on 99% of its images on a CPU with VNNI and on 86.5% on one without).
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo_core.errors import ExportError

__all__ = [
    "DYNAMO_OPSET",
    "OPSET",
    "SELF_CONTAINED_LIMIT",
    "convolutions",
    "fuse_transformer",
    "quantise_dynamic",
    "quantise_static",
    "save_model",
    "set_metadata",
    "store_optimisations",
    "to_fp16",
    "trace",
]

OPSET = 17  # TorchScript exporter
DYNAMO_OPSET = 18  # the dynamo exporter's own (it converts to older opsets through a version converter)
SELF_CONTAINED_LIMIT = 2**31 - 2**26  # protobuf's 2 GB, less room for the graph: larger weights go beside it


def trace(
    graph: Any,
    example: tuple[Any, ...],
    names: Sequence[str],
    path: Path,
    exporter: str,
    text: bool,
    outputs: Sequence[str] = ("logits",),
) -> None:
    """torch.onnx.export of `graph` on `example` (batch ≥ 2 keeps the batch axis dynamic; text also gets a
    dynamic sequence axis), its inputs named `names` and its outputs `outputs` (a multi-task graph gives one
    per task), saved by `save_model` and checked with `onnx.checker`."""
    import onnx
    import torch

    options: dict[str, Any] = {"input_names": list(names), "output_names": list(outputs)}
    if exporter == "dynamo":
        if importlib.util.find_spec("onnxscript") is None:
            raise ExportError(
                "the dynamo exporter needs onnxscript ≥ 0.6: pip install 'zoo-tl[onnx]', or leave the exporter "
                "to zoo's choice"
            )
        batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
        shapes = tuple({0: batch, 1: sequence} if text else {0: batch} for _ in names)
        torch.onnx.export(
            graph,
            example,
            str(path),
            dynamo=True,
            opset_version=DYNAMO_OPSET,
            verbose=False,
            external_data=False,
            dynamic_shapes=shapes,
            **options,
        )
    else:
        axes = {name: {0: "batch", 1: "sequence"} if text else {0: "batch"} for name in names}
        with warnings.catch_warnings():  # torch deprecates the TorchScript exporter; zoo chose it (EXPORTERS)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                graph,
                example,
                str(path),
                dynamo=False,
                opset_version=OPSET,
                dynamic_axes={**axes, **{output: {0: "batch"} for output in outputs}},
                **options,
            )
    save_model(onnx.load(str(path)), path)
    onnx.checker.check_model(str(path))


def save_model(model: Any, path: Path) -> None:
    """One self-contained file, or, for weights above protobuf's 2 GB limit, the graph with its weights in
    ``model.onnx.data`` beside it."""
    import onnx

    weights = sum(len(tensor.raw_data) for tensor in model.graph.initializer)
    external = weights > SELF_CONTAINED_LIMIT
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    onnx.save(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True, location=data.name)


def set_metadata(path: Path, metadata: Mapping[str, str]) -> None:
    """Replace the file's ``metadata_props`` with `metadata`."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    save_model(model, path)


def fuse_transformer(path: Path, config: Mapping[str, Any]) -> None:
    """onnxruntime's transformer fusions for a BERT-family graph (attention, skip layer norm, bias GELU);
    `config` is the model's config.json, for its head count and width."""
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(
        str(path),
        model_type="bert",
        num_heads=config.get("num_attention_heads", 0),
        hidden_size=config.get("hidden_size", 0),
        opt_level=0,
    ).model
    if not any(opset.domain == "com.microsoft" for opset in fused.opset_import):  # the fused nodes' domain
        fused.opset_import.add(domain="com.microsoft", version=1)
    save_model(fused, path)


def store_optimisations(path: Path) -> None:
    """onnxruntime's extended graph optimisations (constant folding, node fusions; for int8, its quantised
    kernels), saved into the file. Extended, not all: the "all" level adds layouts specific to this CPU,
    which would not travel to another machine."""
    import onnx
    import onnxruntime

    optimised = path.with_name("model.optimized.onnx")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimised)
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    save_model(onnx.load(str(optimised)), path)
    optimised.unlink()


def to_fp16(path: Path) -> None:
    """Weights and activations in float16 (onnxruntime's converter); inputs and outputs stay float32, so
    `predict` feeds the file as before."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    save_model(convert_float_to_float16(onnx.load(str(path)), keep_io_types=True), path)


def quantise_dynamic(path: Path, out: Path) -> None:
    """int8 weights, activations quantised at run time (text models), per channel and in 7 bits. Fused
    transformer nodes have output types onnx cannot infer: every float tensor here is float32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _without_preprocessing_advice():
        quantize_dynamic(
            str(path),
            str(out),
            per_channel=True,
            reduce_range=True,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


@contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """Drop the quantiser's root-logger advice to run its pre-processing: for a fused transformer graph zoo
    skips it on purpose (its shape inference does not know the fused nodes), and the CLI shows no noise."""

    def advice(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")

    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def convolutions(path: Path) -> list[str]:
    """The names of the file's Conv nodes, in graph order (the first reads the image)."""
    import onnx

    return [node.name for node in onnx.load(str(path)).graph.node if node.op_type == "Conv"]


def quantise_static(path: Path, out: Path, calibration: Sequence[dict[str, Any]], in_float: Sequence[str]) -> None:
    """Static QDQ int8 (CNNs): uint8 activations whose scales are calibrated on the `calibration` feeds,
    int8 weights per channel in 7 bits; the nodes named in `in_float` stay in float32, and so do the outputs
    of fully connected layers — the logits, which int8 would clip to the range the calibration images gave.

    Shape inference before it is onnx's: onnxruntime's symbolic one is meant for transformers, and when it
    fails it leaves ``sym_shape_infer_temp.onnx`` and its weights in the current directory.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Calibration(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches: Iterator[dict[str, Any]] = iter(calibration)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.batches, None)

    prepared = out.with_name("model.prepared.onnx")
    quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(out),
        Calibration(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(in_float),
        extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"]},
    )
    prepared.unlink()
