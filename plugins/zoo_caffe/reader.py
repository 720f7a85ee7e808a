"""Caffe's files, read with protobuf: ``deploy.prototxt`` (text format), ``.caffemodel`` (binary
`NetParameter`, in the current `layer` or the legacy V1 `layers` form) and ``mean.binaryproto``.

Both layer forms become `Layer` records, so the rest of the converter sees one shape of net.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import message, text_format

from zoo_caffe import caffe_pb2
from zoo_core.errors import WeightsFormatError

__all__ = ["Layer", "Net", "read_mean", "read_net", "read_weights"]

V1_TYPES = {  # V1LayerParameter.LayerType → the type names of the current `layer` form
    "CONCAT": "Concat", "CONVOLUTION": "Convolution", "DATA": "Data", "DROPOUT": "Dropout",
    "ELTWISE": "Eltwise", "FLATTEN": "Flatten", "IMAGE_DATA": "ImageData", "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN", "MEMORY_DATA": "MemoryData", "POOLING": "Pooling", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SOFTMAX": "Softmax", "SPLIT": "Split", "TANH": "TanH", "ACCURACY": "Accuracy", "SOFTMAX_LOSS": "SoftmaxWithLoss",
}  # fmt: skip


@dataclass
class Layer:
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    params: Any  # the LayerParameter (or V1LayerParameter) message, for its *_param fields
    blobs: list[np.ndarray] = field(default_factory=list)
    phase_train_only: bool = False


@dataclass
class Net:
    name: str
    inputs: dict[str, tuple[int, ...]]  # input blob → shape (N, C, H, W) as declared
    layers: list[Layer]


def read_net(path: Path) -> Net:
    """A deploy (or train/val) definition in protobuf text format."""
    net = caffe_pb2.NetParameter()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), net, allow_unknown_field=True)
    except (text_format.ParseError, UnicodeDecodeError) as error:
        raise WeightsFormatError(f"{path}: not a Caffe net definition ({error})") from None
    return _net(net)


def read_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """Each layer's parameter blobs, by layer name, from a binary ``.caffemodel``."""
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(path.read_bytes())
    except message.DecodeError as error:
        raise WeightsFormatError(f"{path}: not a Caffe model, or a truncated one ({error})") from None
    layers = _net(net).layers
    if not layers:
        raise WeightsFormatError(f"{path}: holds no layers: not a Caffe model, or a truncated one")
    return {layer.name: layer.blobs for layer in layers if layer.blobs}


def read_mean(path: Path) -> np.ndarray:
    """A ``mean.binaryproto`` (one BlobProto) as a (C, H, W) array, in the file's (BGR) channel order."""
    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(path.read_bytes())
    except message.DecodeError as error:
        raise WeightsFormatError(f"{path}: not a Caffe mean file ({error})") from None
    array = _array(blob)
    return array.reshape(array.shape[-3:])


def _net(net: Any) -> Net:
    layers = [_layer(layer, layer.type) for layer in net.layer] + [
        _layer(layer, _v1_type(layer)) for layer in net.layers
    ]
    inputs: dict[str, tuple[int, ...]] = {}
    for index, name in enumerate(net.input):
        if len(net.input_shape) > index:
            inputs[name] = tuple(int(d) for d in net.input_shape[index].dim)
        else:
            inputs[name] = tuple(int(d) for d in net.input_dim[4 * index : 4 * index + 4])
    return Net(net.name, inputs, layers)


def _layer(layer: Any, kind: str) -> Layer:
    return Layer(layer.name, kind, list(layer.bottom), list(layer.top), layer,
                 [_array(blob) for blob in layer.blobs], _train_only(layer))  # fmt: skip


def _v1_type(layer: Any) -> str:
    kind = caffe_pb2.V1LayerParameter.LayerType.Name(layer.type)
    return V1_TYPES.get(kind, kind)


def _train_only(layer: Any) -> bool:
    """Included only in the TRAIN phase, or excluded from TEST: not part of the deployed net."""

    def phase(rules: Any, wanted: int) -> bool:
        return any(rule.HasField("phase") and rule.phase == wanted for rule in rules)

    return phase(layer.include, caffe_pb2.TRAIN) or phase(layer.exclude, caffe_pb2.TEST)


def _array(blob: Any) -> np.ndarray:
    """A blob's values in its shape: `shape.dim`, or the legacy num/channels/height/width."""
    values = np.asarray(blob.data if len(blob.data) else blob.double_data, dtype=np.float32)
    shape = tuple(blob.shape.dim) if blob.HasField("shape") else (blob.num, blob.channels, blob.height, blob.width)
    if int(np.prod(shape)) != values.size:
        raise WeightsFormatError(f"a blob declares shape {shape} but holds {values.size} values (a truncated file?)")
    return values.reshape(shape)
