"""The deploy net of a Caffe definition: what Caffe runs at test time, fed one image blob of a known shape.

A ``deploy.prototxt`` is that already. A ``train_val.prototxt`` is not: data layers stand in for the input
(with no shape), loss and accuracy layers read the labels, some layers belong to the TRAIN phase only, and
auxiliary classifiers (GoogLeNet's) feed only losses. `deploy_net` keeps the layers of the TEST phase that
the net's output depends on, and takes the input's shape from the definition, from the TEST data layer's
``transform_param.crop_size`` (3 channels, as Caffe's image data layers give), or from the caller.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import text_format

from zoo_caffe import caffe_pb2
from zoo_caffe.reader import CAFFE_MAX_COUNT, Layer, Net
from zoo_core.errors import WeightsFormatError

__all__ = ["DATA_TYPES", "deploy_net", "deploy_text"]

DATA_TYPES = ("Input", "Data", "ImageData", "MemoryData", "HDF5Data", "WindowData", "DummyData")
METRIC_TYPES = ("Accuracy", "Silence", "HDF5Output")  # like every "*Loss" type: they need labels, give no features


def deploy_net(net: Net, input_shape: tuple[int, ...] | None = None) -> Net:
    """`net` as a deploy net: one input blob of shape (1, C, H, W) and the layers its output depends on.

    `input_shape` (C, H, W) overrides the shape the definition gives, or supplies the one it lacks.
    """
    layers = [layer for layer in net.layers if _in_test_phase(layer.params)]
    name, shape = _input(net, layers, input_shape)
    computing = [layer for layer in layers if layer.type not in (*DATA_TYPES, *METRIC_TYPES)]
    computing = [layer for layer in computing if layer.tops and not layer.type.endswith("Loss")]
    if not computing:
        raise WeightsFormatError(f"{net.source}: the net has no layers to convert, only data, loss and metric ones")
    data = [layer for layer in layers if layer.type in DATA_TYPES and layer.params.HasField("transform_param")]
    transform = data[0].params.transform_param if data else None
    return Net(net.name, {name: shape}, _feeding_the_output(computing), net.source, transform)


def deploy_text(net: Net) -> str:
    """A deploy net as a ``deploy.prototxt``: its input and shape, and its layers without blobs."""
    definition = caffe_pb2.NetParameter(name=net.name)
    for name, shape in net.inputs.items():
        definition.input.append(name)
        definition.input_shape.add(dim=shape)
    for layer in net.layers:
        copy = definition.layer.add() if isinstance(layer.params, caffe_pb2.LayerParameter) else definition.layers.add()
        copy.CopyFrom(layer.params)
        copy.ClearField("blobs")
    return text_format.MessageToString(definition)


def _meets(rule: Any) -> bool:
    """Caffe's `StateMeetsRule` for the state of a deployed net: phase TEST, level 0, no stages."""
    if rule.HasField("phase") and rule.phase != caffe_pb2.TEST:
        return False
    if (rule.HasField("min_level") and rule.min_level > 0) or (rule.HasField("max_level") and rule.max_level < 0):
        return False
    return not rule.stage


def _in_test_phase(params: Any) -> bool:
    """Caffe's `FilterNet`: a layer with include rules needs one of them met; else no exclude rule may be."""
    if params.include:
        return any(_meets(rule) for rule in params.include)
    return not any(_meets(rule) for rule in params.exclude)


def _input(net: Net, layers: list[Layer], input_shape: tuple[int, ...] | None) -> tuple[str, tuple[int, ...]]:
    """The one input blob (a declared input, or an input or data layer's first top) and its (1, C, H, W)."""
    declared = dict(net.inputs)
    for layer in layers:
        if layer.type == "Input" and layer.params.input_param.shape:
            declared[layer.tops[0]] = tuple(int(d) for d in layer.params.input_param.shape[0].dim)
        elif layer.type in DATA_TYPES and layer.tops:  # the other tops are labels
            crop = layer.params.transform_param.crop_size
            declared.setdefault(layer.tops[0], (1, 3, crop, crop) if crop else ())
    if len(declared) != 1:
        raise WeightsFormatError(f"{net.source}: zoo converts nets with one input blob, found {list(declared)}")
    name, shape = next(iter(declared.items()))
    if input_shape is not None:
        shape = (1, *input_shape)
    if len(shape) != 4:
        raise WeightsFormatError(
            f"{net.source}: the input blob '{name}' has no C,H,W shape (a train_val net without "
            "transform_param.crop_size?): give it, e.g. `zoo convert caffe ... --input-shape 3,227,227`"
        )
    if min(shape) < 1 or math.prod(shape[1:]) > CAFFE_MAX_COUNT:
        raise WeightsFormatError(f"{net.source}: the input blob '{name}' has shape {shape}: no image is that size")
    return name, (1, *shape[1:])


def _feeding_the_output(layers: list[Layer]) -> list[Layer]:
    """The layers the last layer's output depends on, in order (a dead end, such as an auxiliary classifier
    whose loss was dropped, goes). Walked backwards by blob name, so in-place layers keep their producers."""
    needed = {layers[-1].tops[0]}
    kept: list[Layer] = []
    for layer in reversed(layers):
        if needed & set(layer.tops):
            kept.append(layer)
            needed = (needed - set(layer.tops)) | set(layer.bottoms)
    return kept[::-1]
