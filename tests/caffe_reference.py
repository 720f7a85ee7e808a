"""An independent numpy reference of Caffe's layers, written from Caffe's layer documentation and the
arithmetic of its CPU implementations (not from zoo's converter): what a Caffe binary would compute.

`run_net` executes a parsed net layer by layer; blobs a layer needs but that `weights` lacks are drawn at
random (so the tests can write them into a .caffemodel), with shapes Caffe's own layer setup would give.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray


def _hw(values: Any, h: int, w: int, default: int) -> tuple[int, int]:
    if h or w:
        return h, w
    found = [int(v) for v in (values if hasattr(values, "__len__") else [values])]
    return (found[0], found[-1]) if found else (default, default)


def convolution(
    x: Array,
    weight: Array,
    bias: Array | None,
    stride: tuple[int, int],
    pad: tuple[int, int],
    dilation: tuple[int, int],
    group: int,
) -> Array:
    """Caffe's im2col convolution: out = floor((H + 2p - (d(k-1)+1)) / s) + 1 per spatial axis."""
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh = (h + 2 * pad[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (w + 2 * pad[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    padded = np.zeros((n, c, h + 2 * pad[0], w + 2 * pad[1]), np.float64)
    padded[:, :, pad[0] : pad[0] + h, pad[1] : pad[1] + w] = x
    columns = np.empty((n, c, kh, kw, oh, ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            columns[:, :, i, j] = padded[
                :, :, top : top + stride[0] * oh : stride[0], left : left + stride[1] * ow : stride[1]
            ]
    out = np.empty((n, o, oh, ow), np.float64)
    og = o // group
    for g in range(group):
        cols = columns[:, g * cg : (g + 1) * cg].reshape(n, cg * kh * kw, oh * ow)
        out[:, g * og : (g + 1) * og] = (weight[g * og : (g + 1) * og].reshape(og, -1) @ cols).reshape(n, og, oh, ow)
    return out + bias.reshape(1, -1, 1, 1) if bias is not None else out


def pooling(
    x: Array, method: str, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int], ceil: bool = True
) -> Array:
    """Caffe's PoolingLayer: output size rounded up (CEIL), minus one when the last window would start
    inside the padding; MAX ignores padding, AVE divides by the window clipped to the padded image."""
    n, c, h, w = x.shape
    rounding: Callable[[float], int] = math.ceil if ceil else math.floor
    sizes = []
    for size, k, s, p in ((h, kernel[0], stride[0], pad[0]), (w, kernel[1], stride[1], pad[1])):
        pooled = rounding((size + 2 * p - k) / s) + 1
        if p and (pooled - 1) * s >= size + p:
            pooled -= 1
        sizes.append(pooled)
    out = np.empty((n, c, *sizes), np.float64)
    for ph in range(sizes[0]):
        for pw in range(sizes[1]):
            hs, ws = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
            if method == "MAX":
                he, we = min(hs + kernel[0], h), min(ws + kernel[1], w)
                out[:, :, ph, pw] = x[:, :, max(hs, 0) : he, max(ws, 0) : we].max(axis=(2, 3))
            else:
                he, we = min(hs + kernel[0], h + pad[0]), min(ws + kernel[1], w + pad[1])
                count = (he - hs) * (we - ws)
                window = x[:, :, max(hs, 0) : min(he, h), max(ws, 0) : min(we, w)]
                out[:, :, ph, pw] = window.sum(axis=(2, 3)) / count
    return out


def lrn_across(x: Array, size: int, alpha: float, beta: float, k: float) -> Array:
    """scale_c = k + alpha/size · Σ x² over channels [c - (size-1)/2, c + size/2]; y = x · scale^-beta."""
    pre = (size - 1) // 2
    squares = np.pad(x * x, ((0, 0), (pre, size - pre - 1), (0, 0), (0, 0)))
    total = sum(squares[:, i : i + x.shape[1]] for i in range(size))
    return x * (k + alpha / size * total) ** -beta


def lrn_within(x: Array, size: int, alpha: float, beta: float) -> Array:
    """Caffe composes it: square, AVE pool (size, stride 1, pad (size-1)/2), power(shift 1, scale alpha, -beta),
    product with x."""
    pad = (size - 1) // 2
    mean = pooling(x * x, "AVE", (size, size), (1, 1), (pad, pad))
    return x * (1 + alpha * mean) ** -beta


def softmax(x: Array, axis: int) -> Array:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def reshape(x: Array, dims: list[int], axis: int, num_axes: int) -> Array:
    start = axis if axis >= 0 else x.ndim + 1 + axis
    end = x.ndim if num_axes == -1 else start + num_axes
    middle = [x.shape[start + i] if d == 0 else d for i, d in enumerate(dims)]
    if -1 in middle:
        known = math.prod(d for d in middle if d != -1) * math.prod(x.shape[:start]) * math.prod(x.shape[end:])
        middle[middle.index(-1)] = x.size // known
    return x.reshape(*x.shape[:start], *middle, *x.shape[end:])


def run_net(net: Any, x: Array, weights: dict[str, list[Array]], rng: np.random.Generator) -> Array:
    """Execute `net` (a zoo_caffe.reader.Net of a deploy definition, or `deploy_net` of a train_val one) on x
    in float64; fill `weights` with random blobs it lacks."""
    blobs: dict[str, Array] = {}
    for layer in net.layers:
        if layer.type in ("Input", "Data"):
            blobs[layer.tops[0]] = x.astype(np.float64)
            continue
        if not blobs:
            blobs[next(iter(net.inputs))] = x.astype(np.float64)
        inputs = [blobs[name] for name in layer.bottoms]
        out = _layer(layer, inputs, weights, rng)
        for top in layer.tops:
            blobs[top] = out
    return out


def _blobs(
    layer: Any, weights: dict[str, list[Array]], shapes: list[tuple[int, ...]], rng: np.random.Generator, scale: float
) -> list[Array]:
    if layer.name not in weights:
        weights[layer.name] = [(rng.standard_normal(shape) * scale).astype(np.float32) for shape in shapes]
    return [blob.astype(np.float64) for blob in weights[layer.name]]


def _layer(layer: Any, inputs: list[Array], weights: dict[str, list[Array]], rng: np.random.Generator) -> Array:
    p, kind, x = layer.params, layer.type, inputs[0]
    if kind == "Convolution":
        c = p.convolution_param
        kernel = _hw(c.kernel_size, c.kernel_h, c.kernel_w, 0)
        shapes = [(c.num_output, x.shape[1] // c.group, *kernel)] + ([(c.num_output,)] if c.bias_term else [])
        fan_in = x.shape[1] // c.group * kernel[0] * kernel[1]
        blobs = _blobs(layer, weights, shapes, rng, 1 / math.sqrt(fan_in))
        return convolution(
            x,
            blobs[0],
            blobs[1] if c.bias_term else None,
            _hw(c.stride, c.stride_h, c.stride_w, 1),
            _hw(c.pad, c.pad_h, c.pad_w, 0),
            _hw(c.dilation, 0, 0, 1),
            c.group,
        )
    if kind == "Pooling":
        q = p.pooling_param
        method = {0: "MAX", 1: "AVE"}[q.pool]
        if q.global_pooling:
            return pooling(x, method, x.shape[2:], (1, 1), (0, 0))
        return pooling(
            x,
            method,
            _hw(q.kernel_size, q.kernel_h, q.kernel_w, 0),
            _hw(q.stride, q.stride_h, q.stride_w, 1),
            _hw(q.pad, q.pad_h, q.pad_w, 0),
            ceil=q.round_mode == 0,
        )
    if kind == "InnerProduct":
        ip = p.inner_product_param
        flat = x.reshape(*x.shape[: ip.axis], -1)
        shapes = [(ip.num_output, flat.shape[-1])] + ([(ip.num_output,)] if ip.bias_term else [])
        blobs = _blobs(layer, weights, shapes, rng, 1 / math.sqrt(flat.shape[-1]))
        out = flat @ blobs[0].T
        return out + blobs[1] if ip.bias_term else out
    if kind == "ReLU":
        return np.where(x > 0, x, x * p.relu_param.negative_slope)
    if kind == "PReLU":
        slopes = _blobs(layer, weights, [(1,) if p.prelu_param.channel_shared else (x.shape[1],)], rng, 0.3)[0]
        return np.where(x > 0, x, x * slopes.reshape(1, -1, *([1] * (x.ndim - 2))))
    if kind == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if kind == "TanH":
        return np.tanh(x)
    if kind == "LRN":
        n = p.lrn_param
        if n.norm_region == 1:
            return lrn_within(x, n.local_size, n.alpha, n.beta)
        return lrn_across(x, n.local_size, n.alpha, n.beta, n.k)
    if kind in ("Dropout", "Split"):
        return x  # Caffe's dropout scales at training time, so the test phase passes x through
    if kind == "Concat":
        return np.concatenate(inputs, axis=p.concat_param.axis)
    if kind == "Eltwise":
        e = p.eltwise_param
        if e.operation == 0:
            return np.prod(inputs, axis=0)
        if e.operation == 2:
            return np.max(inputs, axis=0)
        coefficients = list(e.coeff) or [1.0] * len(inputs)
        return sum(c * a for c, a in zip(coefficients, inputs, strict=True))
    if kind == "BatchNorm":
        channels = x.shape[1]
        if layer.name not in weights:
            factor = np.float32(rng.uniform(0.5, 2))
            weights[layer.name] = [
                (rng.standard_normal(channels) * 0.1 * factor).astype(np.float32),
                (rng.uniform(0.5, 2, channels) * factor).astype(np.float32),
                np.array([factor], np.float32),
            ]
        mean, var, factor = (blob.astype(np.float64) for blob in weights[layer.name])
        scale = 0 if factor[0] == 0 else 1 / factor[0]
        view = (1, -1, *([1] * (x.ndim - 2)))
        return (x - (mean * scale).reshape(view)) / np.sqrt((var * scale).reshape(view) + p.batch_norm_param.eps)
    if kind == "Scale":  # by a learned blob over axes [axis, axis + num_axes), or by a second input
        s = p.scale_param
        if len(inputs) == 2:
            shape, end = inputs[1].shape, s.axis + inputs[1].ndim
            blobs = [inputs[1], *_blobs(layer, weights, [shape] if s.bias_term else [], rng, 0.5)]
        else:
            end = x.ndim if s.num_axes == -1 else s.axis + s.num_axes
            shape = x.shape[s.axis : end]
            blobs = _blobs(layer, weights, [shape] + ([shape] if s.bias_term else []), rng, 0.5)
        view = (*shape, *([1] * (x.ndim - end)))
        out = x * blobs[0].reshape(view)
        return out + blobs[1].reshape(view) if s.bias_term else out
    if kind == "Softmax":
        return softmax(x, p.softmax_param.axis)
    if kind == "Flatten":
        f = p.flatten_param
        end = f.end_axis if f.end_axis >= 0 else x.ndim + f.end_axis
        return x.reshape(*x.shape[: f.axis], -1, *x.shape[end + 1 :])
    if kind == "Reshape":
        r = p.reshape_param
        return reshape(x, [int(d) for d in r.shape.dim], r.axis, r.num_axes)
    raise NotImplementedError(kind)
