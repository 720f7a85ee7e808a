"""Caffe's files, read with protobuf: net definitions (``deploy.prototxt`` or ``train_val.prototxt``, text
format), ``.caffemodel`` (binary `NetParameter`, in the current `layer` or the legacy V1 `layers` form) and
``mean.binaryproto``.

Both layer forms become `Layer` records, so the rest of the converter sees one shape of net. Every blob is
checked against its declared shape before it becomes an array: a file cannot make zoo allocate more than it
holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import message, text_format

from zoo_caffe import caffe_pb2
from zoo_core.errors import WeightsFormatError

__all__ = ["CAFFE_MAX_COUNT", "Layer", "Net", "read_mean", "read_net", "read_weights"]

CAFFE_MAX_COUNT = 2**31 - 1  # Caffe's limit on the values one blob holds, and on the bytes of a file it parses

V1_TYPES = {  # V1LayerParameter.LayerType → the type names of the current `layer` form
    "CONCAT": "Concat",
    "CONVOLUTION": "Convolution",
    "DATA": "Data",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "ELTWISE": "Eltwise",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "IMAGE_DATA": "ImageData",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "POOLING": "Pooling",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SOFTMAX": "Softmax",
    "SPLIT": "Split",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "ACCURACY": "Accuracy",
    "SILENCE": "Silence",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "HINGE_LOSS": "HingeLoss",
    "INFOGAIN_LOSS": "InfogainLoss",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
}


@dataclass
class Layer:
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    params: Any  # the LayerParameter (or V1LayerParameter) message, for its *_param fields
    blobs: list[np.ndarray] = field(default_factory=list)


@dataclass
class Net:
    name: str
    inputs: dict[str, tuple[int, ...]]  # input blob → shape (N, C, H, W) as declared
    layers: list[Layer]
    source: str = ""  # the file the net was read from, for error messages
    transform: Any = None  # a train_val's TEST-phase data transform (crop, mean values, scale), once derived


def read_net(path: Path) -> Net:
    """A net definition in protobuf text format: a deploy net, or a train_val one (see `deploy_net`)."""
    net = caffe_pb2.NetParameter()
    try:
        text_format.Parse(_contents(path).decode("utf-8"), net, allow_unknown_field=True)
    except (text_format.ParseError, UnicodeDecodeError) as error:
        raise WeightsFormatError(f"{path}: not a Caffe net definition ({error})") from None
    return _net(net, path)


def read_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """Each layer's parameter blobs, by layer name, from a binary ``.caffemodel``."""
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(_contents(path))
    except message.DecodeError as error:
        raise WeightsFormatError(f"{path}: not a Caffe model, or a truncated one ({error})") from None
    layers = _net(net, path).layers
    if not layers:
        raise WeightsFormatError(f"{path}: holds no layers: not a Caffe model, or a truncated one")
    return {layer.name: layer.blobs for layer in layers if layer.blobs}


def read_mean(path: Path) -> np.ndarray:
    """A ``mean.binaryproto`` (one BlobProto) as a (C, H, W) array, in the file's (BGR) channel order."""
    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(_contents(path))
    except message.DecodeError as error:
        raise WeightsFormatError(f"{path}: not a Caffe mean file ({error})") from None
    array = _array(blob, f"{path}: the mean blob")
    if array.ndim < 3 or math.prod(array.shape[:-3]) != 1:
        raise WeightsFormatError(f"{path}: a mean file holds one C x H x W image, this blob is {array.shape}")
    return array.reshape(array.shape[-3:])


def _contents(path: Path) -> bytes:
    """The file's bytes, refused past the 2 GiB that protobuf (and so Caffe) can parse."""
    size = path.stat().st_size
    if size > CAFFE_MAX_COUNT:
        raise WeightsFormatError(f"{path}: {size:,} bytes, more than the 2 GiB a Caffe file can hold")
    return path.read_bytes()


def _net(net: Any, path: Path) -> Net:
    layers = [_layer(layer, layer.type, path) for layer in net.layer]
    layers += [_layer(layer, _v1_type(layer), path) for layer in net.layers]
    inputs: dict[str, tuple[int, ...]] = {}
    for index, name in enumerate(net.input):
        if len(net.input_shape) > index:
            inputs[name] = tuple(int(d) for d in net.input_shape[index].dim)
        else:
            inputs[name] = tuple(int(d) for d in net.input_dim[4 * index : 4 * index + 4])
    return Net(net.name, inputs, layers, str(path))


def _layer(layer: Any, kind: str, path: Path) -> Layer:
    blobs = [_array(blob, f"{path}: layer '{layer.name}' blob {index}") for index, blob in enumerate(layer.blobs)]
    return Layer(layer.name, kind, list(layer.bottom), list(layer.top), layer, blobs)


def _v1_type(layer: Any) -> str:
    kind = caffe_pb2.V1LayerParameter.LayerType.Name(layer.type)
    return V1_TYPES.get(kind, kind)


def _array(blob: Any, where: str) -> np.ndarray:
    """A blob's values in its shape, checked first: every dimension positive and their product the number of
    values the blob holds. The shape is the legacy num/channels/height/width when any of them is set, else
    `shape.dim` (none: a scalar), as Caffe's `Blob::FromProto` reads it."""
    values = blob.data if len(blob.data) else blob.double_data
    legacy = any(blob.HasField(axis) for axis in ("num", "channels", "height", "width"))
    shape = (blob.num, blob.channels, blob.height, blob.width) if legacy else tuple(blob.shape.dim)
    if any(d < 1 for d in shape) or math.prod(shape) != len(values):
        raise WeightsFormatError(
            f"{where} declares shape {shape} but holds {len(values):,} values: a truncated or corrupt file"
        )
    return np.asarray(values, dtype=np.float32).reshape(shape)
