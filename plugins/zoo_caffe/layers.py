"""Caffe's layers as torch modules, each with Caffe's semantics where they differ from torch's defaults.

`build_layer` turns one `Layer` record and the shapes of its inputs into a module; parameter blobs are
loaded later (`CaffeNetwork.load_blobs`), by the module's own `blob_names`. Every parameter a definition
gives is checked as Caffe's own layer setup checks it: a value Caffe would refuse, or one torch would take
with other semantics, raises ValueError with the reason (`CaffeNetwork` names the file and the layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo_caffe.reader import Layer

__all__ = ["InnerProduct", "build_layer"]

Shapes = list[tuple[int, ...]]  # the shapes of a layer's inputs, batch axis included


def _pair(name: str, values: Any, h: int, w: int, default: int) -> tuple[int, int]:
    """Caffe's pad/kernel/stride of a 2-D layer: the *_h/*_w pair, else one value (or one per axis), else the
    default."""
    if h or w:
        return (h, w)
    found = [int(v) for v in values] or [default]
    if len(found) > 2:
        raise ValueError(f"{len(found)} values of {name}: zoo converts 2-D layers (one value, or one per axis)")
    return (found[0], found[-1])


def _at_least_one(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} is {value}, must be at least 1")


def _image(shapes: Shapes) -> tuple[int, ...]:
    """The N, C, H, W input of a 2-D layer."""
    if len(shapes[0]) != 4:
        raise ValueError(f"needs an N,C,H,W input, gets one of shape {shapes[0]}")
    return shapes[0]


def _axis(axis: int, rank: int) -> int:
    """Caffe's `CanonicalAxisIndex`: -rank <= axis < rank, negative counting from the end."""
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for an input of {rank} axes")
    return axis if axis >= 0 else rank + axis


def _axes(axis: int, num_axes: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes [axis, axis + num_axes) of `shape` (num_axes -1: to the end) a Scale or Bias blob spans."""
    start = _axis(axis, len(shape))
    if num_axes < -1 or start + num_axes > len(shape):
        raise ValueError(f"num_axes {num_axes} from axis {axis} does not fit an input of {len(shape)} axes")
    return shape[start:] if num_axes == -1 else shape[start : start + num_axes]


class Convolution(nn.Conv2d):
    blob_names = ("weight", "bias")


class InnerProduct(nn.Linear):
    """Caffe flattens every axis from `axis` on before the product."""

    blob_names = ("weight", "bias")

    def __init__(self, axis: int, inputs: int, outputs: int, bias: bool, transpose: bool) -> None:
        super().__init__(inputs, outputs, bias)
        self.axis, self.transpose = axis, transpose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(self.axis))


class CaffeBatchNorm(nn.BatchNorm2d):
    """Normalisation only: Caffe puts the affine part in a following Scale layer. (Its mean and variance
    blobs are stored times a third, scale-factor blob: `CaffeNetwork.load_blobs` divides it out.)"""

    blob_names = ("running_mean", "running_var")


class Scale(nn.Module):
    """Multiply by a learned blob broadcast from `axis` (and add a bias), or by a second input."""

    def __init__(self, axis: int, shape: tuple[int, ...], bias: bool, scale_input: bool = False) -> None:
        super().__init__()
        self.axis = axis
        self.weight = None if scale_input else nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape)) if bias else None
        self.blob_names = tuple(name for name, on in (("weight", not scale_input), ("bias", bias)) if on)

    def _view(self, value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return value.reshape(*value.shape, *([1] * (x.dim() - self.axis - value.dim())))

    def forward(self, x: torch.Tensor, factor: torch.Tensor | None = None) -> torch.Tensor:
        scale = factor if factor is not None else self.weight
        assert scale is not None
        out = x * self._view(scale, x)
        return out + self._view(self.bias, x) if self.bias is not None else out


class Bias(Scale):
    def __init__(self, axis: int, shape: tuple[int, ...]) -> None:
        super().__init__(axis, shape, True, scale_input=True)

    def forward(self, x: torch.Tensor, factor: torch.Tensor | None = None) -> torch.Tensor:
        assert self.bias is not None
        return x + self._view(self.bias, x)


class WithinChannelLRN(nn.Module):
    """x / (1 + alpha * mean of x² over a size x size window)^beta, as Caffe composes it (k is unused)."""

    def __init__(self, size: int, alpha: float, beta: float) -> None:
        super().__init__()
        self.size, self.alpha, self.beta = size, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.size - 1) // 2
        mean = F.avg_pool2d(x * x, self.size, 1, pad, ceil_mode=True, count_include_pad=True)
        return x * (1 + self.alpha * mean) ** -self.beta


class Eltwise(nn.Module):
    def __init__(self, operation: str, coefficients: list[float]) -> None:
        super().__init__()
        self.operation, self.coefficients = operation, coefficients

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.operation == "PROD":
            return math.prod(inputs[1:], start=inputs[0])
        if self.operation == "MAX":
            return torch.stack(inputs).amax(0)
        coefficients = self.coefficients or [1.0] * len(inputs)
        return sum((c * x for c, x in zip(coefficients, inputs, strict=True)), start=torch.zeros_like(inputs[0]))


class Concat(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, self.axis)


class Flatten(nn.Module):
    def __init__(self, axis: int, end_axis: int) -> None:
        super().__init__()
        self.axis, self.end_axis = axis, end_axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(self.axis, self.end_axis)


class Reshape(nn.Module):
    """Caffe's reshape: 0 copies the input's dimension, -1 is inferred; only axes [axis, axis+num_axes)
    of the input are replaced."""

    def __init__(self, dims: list[int], axis: int, num_axes: int) -> None:
        super().__init__()
        self.dims, self.axis, self.num_axes = dims, axis, num_axes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = self.axis if self.axis >= 0 else x.dim() + 1 + self.axis
        end = x.dim() if self.num_axes == -1 else start + self.num_axes
        middle = [x.shape[start + i] if d == 0 else d for i, d in enumerate(self.dims)]
        return x.reshape(*x.shape[:start], *middle, *x.shape[end:])


class Split(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _convolution(p: Any, shapes: Shapes) -> nn.Module:
    c = p.convolution_param
    channels = _image(shapes)[1]
    kernel = _pair("kernel_size", c.kernel_size, c.kernel_h, c.kernel_w, 0)
    stride = _pair("stride", c.stride, c.stride_h, c.stride_w, 1)
    pad = _pair("pad", c.pad, c.pad_h, c.pad_w, 0)
    dilation = _pair("dilation", c.dilation, 0, 0, 1)
    _at_least_one(
        num_output=c.num_output, group=c.group, kernel=min(kernel), stride=min(stride), dilation=min(dilation)
    )
    if c.axis != 1:
        raise ValueError(f"axis {c.axis}: zoo converts convolutions over channels (axis 1)")
    if channels % c.group or c.num_output % c.group:
        raise ValueError(f"group {c.group} must divide the {channels} input channels and num_output {c.num_output}")
    return Convolution(channels, c.num_output, kernel, stride, pad, dilation, c.group, c.bias_term)


def _pooling(p: Any, shapes: Shapes) -> nn.Module:
    q = p.pooling_param
    shape = _image(shapes)
    if q.global_pooling:
        kernel, stride, pad = (shape[2], shape[3]), (1, 1), (0, 0)
    else:
        kernel = _pair("kernel_size", [q.kernel_size], q.kernel_h, q.kernel_w, 0)
        stride = _pair("stride", [q.stride], q.stride_h, q.stride_w, 1)
        pad = _pair("pad", [q.pad], q.pad_h, q.pad_w, 0)
    _at_least_one(kernel=min(kernel), stride=min(stride))
    if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
        raise ValueError(f"pad {pad} must be smaller than the kernel {kernel}, as Caffe requires")
    ceil = q.round_mode == q.CEIL  # Caffe rounds the output size up, then drops a window that starts in padding
    if q.pool == q.MAX:
        return nn.MaxPool2d(kernel, stride, pad, ceil_mode=ceil)
    if q.pool == q.AVE:  # the divisor counts padding inside the padded bounds, as Caffe's does
        return nn.AvgPool2d(kernel, stride, pad, ceil_mode=ceil, count_include_pad=True)
    raise ValueError(f"pooling {q.PoolMethod.Name(q.pool)} is not supported (MAX and AVE are)")


def _inner_product(p: Any, shapes: Shapes) -> nn.Module:
    ip = p.inner_product_param
    axis = _axis(ip.axis, len(shapes[0]))
    _at_least_one(num_output=ip.num_output)
    return InnerProduct(axis, math.prod(shapes[0][axis:]), ip.num_output, ip.bias_term, ip.transpose)


def _lrn(p: Any, shapes: Shapes) -> nn.Module:
    n = p.lrn_param
    _image(shapes)
    if n.local_size % 2 == 0:
        raise ValueError(f"local_size {n.local_size} must be odd, as Caffe requires")
    if n.norm_region == n.WITHIN_CHANNEL:
        return WithinChannelLRN(n.local_size, n.alpha, n.beta)
    return nn.LocalResponseNorm(n.local_size, n.alpha, n.beta, n.k)  # x / (k + alpha/n · Σx²)^beta


def _prelu(p: Any, shapes: Shapes) -> nn.Module:
    if len(shapes[0]) < 2:
        raise ValueError(f"needs an input with a channel axis, gets one of shape {shapes[0]}")
    prelu = nn.PReLU(1 if p.prelu_param.channel_shared else shapes[0][1])
    prelu.blob_names = ("weight",)  # type: ignore[assignment]
    return prelu


def _concat(p: Any, shapes: Shapes) -> nn.Module:
    axis = p.concat_param.axis if p.concat_param.HasField("axis") else p.concat_param.concat_dim
    return Concat(_axis(axis, len(shapes[0])))


def _eltwise(p: Any, shapes: Shapes) -> nn.Module:
    e = p.eltwise_param
    if len(shapes) < 2 or any(shape != shapes[0] for shape in shapes):
        raise ValueError(f"needs two or more inputs of one shape (Caffe does not broadcast), gets {shapes}")
    if e.coeff and (e.operation != e.SUM or len(e.coeff) != len(shapes)):
        raise ValueError(f"{len(e.coeff)} coeff for {len(shapes)} inputs: SUM takes one per input, or none")
    return Eltwise(e.EltwiseOp.Name(e.operation), list(e.coeff))


def _scale(p: Any, shapes: Shapes) -> nn.Module:
    s = p.scale_param
    if len(shapes) == 1:
        return Scale(_axis(s.axis, len(shapes[0])), _axes(s.axis, s.num_axes, shapes[0]), s.bias_term)
    axis = _axis(s.axis, len(shapes[0]))
    if shapes[1] != shapes[0][axis : axis + len(shapes[1])]:
        raise ValueError(f"the scale input {shapes[1]} must match the input {shapes[0]} from axis {axis}")
    return Scale(axis, shapes[1], s.bias_term, scale_input=True)


def _bias(p: Any, shapes: Shapes) -> nn.Module:
    b = p.bias_param
    if len(shapes) != 1:
        raise ValueError("a Bias layer with a second input is not supported (a learned bias is)")
    return Bias(_axis(b.axis, len(shapes[0])), _axes(b.axis, b.num_axes, shapes[0]))


def _flatten(p: Any, shapes: Shapes) -> nn.Module:
    f, rank = p.flatten_param, len(shapes[0])
    axis, end = _axis(f.axis, rank), _axis(f.end_axis, rank)
    if end < axis:
        raise ValueError(f"end_axis {f.end_axis} comes before axis {f.axis}")
    return Flatten(axis, end)


def _reshape(p: Any, shapes: Shapes) -> nn.Module:
    r = p.reshape_param
    dims = [int(d) for d in r.shape.dim]
    if any(d < -1 for d in dims) or dims.count(-1) > 1:
        raise ValueError(f"shape {dims}: each dim is positive, 0 (copy) or -1 (inferred, once at most)")
    if not -len(shapes[0]) - 1 <= r.axis <= len(shapes[0]) or r.num_axes < -1:
        raise ValueError(f"axis {r.axis} and num_axes {r.num_axes} do not fit an input of {len(shapes[0])} axes")
    return Reshape(dims, r.axis, r.num_axes)


BUILDERS: dict[str, Callable[[Any, Shapes], nn.Module]] = {
    "Convolution": _convolution,
    "Pooling": _pooling,
    "InnerProduct": _inner_product,
    "ReLU": lambda p, shapes: nn.LeakyReLU(p.relu_param.negative_slope) if p.relu_param.negative_slope else nn.ReLU(),
    "PReLU": _prelu,
    "Sigmoid": lambda p, shapes: nn.Sigmoid(),
    "TanH": lambda p, shapes: nn.Tanh(),
    "LRN": _lrn,
    "Dropout": lambda p, shapes: nn.Dropout(p.dropout_param.dropout_ratio),
    "Concat": _concat,
    "Eltwise": _eltwise,
    "BatchNorm": lambda p, shapes: CaffeBatchNorm(_image(shapes)[1], eps=p.batch_norm_param.eps, affine=False),
    "Scale": _scale,
    "Bias": _bias,
    "Softmax": lambda p, shapes: nn.Softmax(_axis(p.softmax_param.axis, len(shapes[0]))),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Split": lambda p, shapes: Split(),
}


def build_layer(layer: Layer, shapes: Shapes) -> nn.Module:
    """The module for one Caffe layer, given the shapes of its inputs (batch axis included)."""
    if layer.type not in BUILDERS:
        raise ValueError("not supported by zoo's Caffe converter (docs/caffe.md lists the layers it converts)")
    if not shapes:
        raise ValueError("has no input (bottom)")
    return BUILDERS[layer.type](layer.params, shapes)
