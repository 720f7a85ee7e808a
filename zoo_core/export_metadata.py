"""zoo's metadata in an exported ONNX file: written by ``zoo export``, checked field by field before use.

An export carries its labels, preprocessing and provenance in ``metadata_props`` (keys ``zoo.*``). A file
can come from anywhere, so ``zoo predict`` reads none of it unchecked: the preprocessing passes the
registry's own checks (finite mean, std above 0, known interpolation, crop mode and channel order), sizes
stay within the bounds below and match the graph's input, and there is one label per logit. A 100,000-pixel
height would otherwise become a 44 GB allocation.

A single-task file has one output, ``logits``, and ``zoo.labels`` is its list of labels. A multi-task file
has one output per task, named by the task, and ``zoo.labels`` is {task: labels}: the names must be task
names (`zoo_core.training.tasks`) and be exactly the graph's outputs, each with one label per logit.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from zoo_core._version import __version__
from zoo_core.errors import ExportError, RegistryError, RunOptionError
from zoo_core.registry import parse_input
from zoo_core.specs import ImageInput, ModelSpec, TextInput
from zoo_core.training.tasks import check_task_name

__all__ = ["MAX_LABELS", "MAX_SIDE", "MAX_TOKENS", "PRECISIONS", "ExportMetadata", "read_metadata", "write_metadata"]

PRECISIONS = ("fp32", "fp16", "int8")
MAX_SIDE = 4096  # pixels of the network's input: far above any classifier's, far below a runaway allocation
MAX_TOKENS = 65536  # tokens per text
MAX_LABELS = 1_000_000
_RESIZE_LIMIT = 2 * MAX_SIDE  # the resized image's side (size / crop_pct) before the crop


@dataclasses.dataclass(frozen=True)
class ExportMetadata:
    """The checked metadata `zoo_core.Predictor` works from."""

    modality: str  # image | text
    labels: list[str]  # one per logit of the ``logits`` output, in order; empty for a multi-task file
    input: dict[str, Any]  # the preprocessing: every field of ImageInput or TextInput, defaults filled in
    precision: str  # fp32 | fp16 | int8
    outputs: dict[str, list[str]]  # each output's labels: {"logits": labels}, or {task: labels} per task


def write_metadata(
    spec: ModelSpec, labels: Sequence[str] | Mapping[str, Sequence[str]], manifest: Mapping[str, Any], precision: str
) -> dict[str, str]:
    """The ``zoo.*`` entries of an export of `spec` (from a run with `manifest`, or empty for a catalogue
    model); `labels` is the ``logits`` output's, or each task's by its output's name."""
    named = {name: list(names) for name, names in labels.items()} if isinstance(labels, Mapping) else list(labels)
    return {
        "zoo.version": __version__,
        "zoo.model": spec.name,
        "zoo.modality": spec.modality,
        "zoo.labels": json.dumps(named),
        "zoo.preprocessing": json.dumps(spec.to_dict()["input"]),
        "zoo.precision": precision,
        "zoo.revision": str(manifest.get("revision") or spec.source.revision or ""),
        "zoo.sha256": json.dumps(manifest.get("files") or dict(spec.sha256)),
        "zoo.source": json.dumps(spec.to_dict()["source"]),
    }


def read_metadata(
    meta: Mapping[str, str], input_shape: Sequence[int | str | None], outputs: Mapping[str, int | None], where: str
) -> ExportMetadata:
    """The checked ``zoo.*`` metadata of the model at `where`, whose graph takes `input_shape` (the first
    input's, batch axis included) and gives `outputs`: each (batch, classes) output's class count by name
    (None when that axis is dynamic)."""
    if "zoo.labels" not in meta:
        raise ExportError(f"{where}: no zoo metadata (labels, preprocessing); export it with `zoo export`")
    modality = _choice(meta, "zoo.modality", ("image", "text"), where)
    precision = _choice(meta, "zoo.precision", PRECISIONS, where)
    named = _outputs(meta, outputs, where)
    table = _json(meta, "zoo.preprocessing", where)
    try:
        spec = parse_input(table, modality, f"{where}: metadata 'zoo.preprocessing'")
    except RegistryError as error:
        raise _refused(str(error)) from None
    if isinstance(spec, ImageInput):
        _check_image(spec, input_shape, where)
    elif isinstance(spec, TextInput) and spec.max_length > MAX_TOKENS:
        raise _refused(f"{where}: metadata 'zoo.preprocessing': max_length {spec.max_length} is above {MAX_TOKENS}")
    return ExportMetadata(modality, named.get("logits", []), dataclasses.asdict(spec), precision, named)


def _refused(message: str) -> ExportError:
    return ExportError(f"{message}; export the model again with `zoo export`")


def _json(meta: Mapping[str, str], key: str, where: str) -> Any:
    try:
        return json.loads(meta.get(key, ""))
    except ValueError:
        raise _refused(f"{where}: metadata '{key}' is not JSON") from None


def _choice(meta: Mapping[str, str], key: str, choices: Sequence[str], where: str) -> str:
    value = meta.get(key, "")
    if value not in choices:
        raise _refused(f"{where}: metadata '{key}' is {value!r}, not one of {', '.join(choices)}")
    return value


def _outputs(meta: Mapping[str, str], outputs: Mapping[str, int | None], where: str) -> dict[str, list[str]]:
    """Each output's checked labels: ``logits``'s for a list, each task's for {task: labels}."""
    labels = _json(meta, "zoo.labels", where)
    if not isinstance(labels, dict):
        if "logits" not in outputs:
            raise ExportError(f"{where}: no 'logits' output of shape (batch, classes); export it with `zoo export`")
        return {"logits": _labels(labels, outputs["logits"], where, "")}
    if not 2 <= len(labels) <= len(outputs) or set(labels) != set(outputs):
        raise _refused(
            f"{where}: metadata 'zoo.labels' names outputs {', '.join(map(repr, labels))}, the graph gives "
            f"{', '.join(map(repr, outputs))}"
        )
    for name in labels:
        try:
            check_task_name(name, f"{where}: metadata 'zoo.labels'")
        except RunOptionError as error:
            raise _refused(str(error).partition(";")[0]) from None
    return {name: _labels(labels[name], outputs[name], where, f" output '{name}'") for name in labels}


def _labels(labels: Any, logits: int | None, where: str, output: str) -> list[str]:
    if not isinstance(labels, list) or not 0 < len(labels) <= MAX_LABELS or not all(isinstance(x, str) for x in labels):
        raise _refused(f"{where}: metadata 'zoo.labels'{output} is not a list of 1 to {MAX_LABELS:,} strings")
    if logits is not None and len(labels) != logits:
        raise _refused(f"{where}: metadata 'zoo.labels'{output} names {len(labels)} labels for {logits} logits")
    return labels


def _check_image(spec: ImageInput, input_shape: Sequence[int | str | None], where: str) -> None:
    """Sizes within bounds, and the same as the graph's input wherever the graph fixes them."""
    field = f"{where}: metadata 'zoo.preprocessing'"
    if spec.channels not in (1, 3):
        raise _refused(f"{field}: channels is {spec.channels}; images have 1 (grey) or 3 (colour)")
    for name, size in (("height", spec.height), ("width", spec.width)):
        if size > MAX_SIDE:
            raise _refused(f"{field}: {name} {size} is above {MAX_SIDE} pixels")
        if size / spec.crop_pct > _RESIZE_LIMIT:
            raise _refused(f"{field}: {name} / crop_pct = {size / spec.crop_pct:.0f} pixels, above {_RESIZE_LIMIT}")
    expected = (spec.channels, spec.height, spec.width)
    graph = tuple(input_shape[1:])
    if len(graph) != 3 or any(isinstance(dim, int) and dim != want for dim, want in zip(graph, expected, strict=True)):
        shown = "x".join(str(dim) for dim in graph)
        raise _refused(f"{field}: {'x'.join(map(str, expected))} images, but the graph takes {shown}")
