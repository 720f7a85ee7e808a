"""Caffe's layers as torch modules, each with Caffe's semantics where they differ from torch's defaults.

`build_layer` turns one `Layer` record and the shapes of its inputs into a module; parameter blobs are
loaded later (`CaffeNetwork.load_blobs`), by the module's own `blob_names`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo_caffe.reader import Layer
from zoo_core.errors import WeightsFormatError

__all__ = ["INPUT_TYPES", "build_layer"]

INPUT_TYPES = ("Input", "Data", "ImageData", "MemoryData")


def _pair(values: Any, h: int, w: int, default: int) -> tuple[int, int]:
    """Caffe's pad/kernel/stride: the *_h/*_w pair, else one value (or one per axis), else the default."""
    if h or w:
        return (h, w)
    found = [int(v) for v in values] or [default]
    return (found[0], found[-1])


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

    def __init__(self, axis: int, shape: tuple[int, ...], bias: bool) -> None:
        super().__init__()
        self.axis = axis
        self.weight = nn.Parameter(torch.ones(shape)) if shape else None
        self.bias = nn.Parameter(torch.zeros(shape)) if bias else None
        self.blob_names = tuple(name for name, on in (("weight", shape), ("bias", bias)) if on)

    def _view(self, value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return value.reshape(*value.shape, *([1] * (x.dim() - self.axis - value.dim())))

    def forward(self, x: torch.Tensor, factor: torch.Tensor | None = None) -> torch.Tensor:
        scale = factor if factor is not None else self.weight
        assert scale is not None
        out = x * self._view(scale, x)
        return out + self._view(self.bias, x) if self.bias is not None else out


class Bias(Scale):
    def __init__(self, axis: int, shape: tuple[int, ...]) -> None:
        super().__init__(axis, (), True)
        self.bias = nn.Parameter(torch.zeros(shape))
        self.blob_names = ("bias",)

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


def _axis(axis: int, rank: int) -> int:
    return axis if axis >= 0 else rank + axis


def build_layer(layer: Layer, shapes: list[tuple[int, ...]]) -> nn.Module:
    """The module for one Caffe layer, given the shapes of its inputs (batch axis included)."""
    p, kind, shape = layer.params, layer.type, shapes[0] if shapes else ()
    if kind == "Convolution":
        c = p.convolution_param
        kernel = _pair(c.kernel_size, c.kernel_h, c.kernel_w, 0)
        stride = _pair(c.stride, c.stride_h, c.stride_w, 1)
        pad = _pair(c.pad, c.pad_h, c.pad_w, 0)
        dilation = _pair(c.dilation, 0, 0, 1)
        return Convolution(shape[1], c.num_output, kernel, stride, pad, dilation, c.group, c.bias_term)
    if kind == "Pooling":
        q = p.pooling_param
        if q.global_pooling:
            kernel, stride, pad = (shape[2], shape[3]), (1, 1), (0, 0)
        else:
            kernel = _pair([q.kernel_size], q.kernel_h, q.kernel_w, 0)
            stride = _pair([q.stride], q.stride_h, q.stride_w, 1)
            pad = _pair([q.pad], q.pad_h, q.pad_w, 0)
        ceil = q.round_mode == q.CEIL  # Caffe rounds the output size up, then drops a window that starts in padding
        if q.pool == q.MAX:
            return nn.MaxPool2d(kernel, stride, pad, ceil_mode=ceil)
        if q.pool == q.AVE:  # the divisor counts padding inside the padded bounds, as Caffe's does
            return nn.AvgPool2d(kernel, stride, pad, ceil_mode=ceil, count_include_pad=True)
    if kind == "InnerProduct":
        ip = p.inner_product_param
        axis = _axis(ip.axis, len(shape))
        return InnerProduct(axis, math.prod(shape[axis:]), ip.num_output, ip.bias_term, ip.transpose)
    if kind == "ReLU":
        slope = p.relu_param.negative_slope
        return nn.LeakyReLU(slope) if slope else nn.ReLU()
    if kind == "PReLU":
        prelu = nn.PReLU(1 if p.prelu_param.channel_shared else shape[1])
        prelu.blob_names = ("weight",)  # type: ignore[assignment]
        return prelu
    if kind == "Sigmoid":
        return nn.Sigmoid()
    if kind == "TanH":
        return nn.Tanh()
    if kind == "LRN":
        n = p.lrn_param
        if n.local_size % 2 == 0:
            raise WeightsFormatError(f"layer '{layer.name}' (LRN): local_size must be odd, as Caffe requires")
        if n.norm_region == n.WITHIN_CHANNEL:
            return WithinChannelLRN(n.local_size, n.alpha, n.beta)
        return nn.LocalResponseNorm(n.local_size, n.alpha, n.beta, n.k)  # x / (k + alpha/n · Σx²)^beta
    if kind == "Dropout":
        return nn.Dropout(p.dropout_param.dropout_ratio)
    if kind == "Concat":
        axis = p.concat_param.axis if p.concat_param.HasField("axis") else p.concat_param.concat_dim
        return Concat(_axis(axis, len(shape)))
    if kind == "Eltwise":
        e = p.eltwise_param
        return Eltwise(e.EltwiseOp.Name(e.operation), list(e.coeff))
    if kind == "BatchNorm":
        return CaffeBatchNorm(shape[1], eps=p.batch_norm_param.eps, affine=False)
    if kind == "Scale":
        s = p.scale_param
        axis = _axis(s.axis, len(shape))
        end = len(shape) if s.num_axes == -1 else axis + s.num_axes
        return Scale(axis, tuple(shape[axis:end]) if len(shapes) == 1 else (), s.bias_term)
    if kind == "Bias":
        b = p.bias_param
        axis = _axis(b.axis, len(shape))
        end = len(shape) if b.num_axes == -1 else axis + b.num_axes
        return Bias(axis, tuple(shape[axis:end]))
    if kind == "Softmax":
        return nn.Softmax(_axis(p.softmax_param.axis, len(shape)))
    if kind == "Flatten":
        return Flatten(_axis(p.flatten_param.axis, len(shape)), p.flatten_param.end_axis)
    if kind == "Reshape":
        r = p.reshape_param
        return Reshape([int(d) for d in r.shape.dim], r.axis, r.num_axes)
    if kind == "Split":
        return Split()
    raise WeightsFormatError(
        f"layer '{layer.name}' of type {kind} is not supported by zoo's Caffe converter"
        + (" (pooling: MAX and AVE only)" if kind == "Pooling" else "")
    )
