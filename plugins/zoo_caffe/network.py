"""`CaffeNetwork`: a Caffe net definition as one torch module that runs its layers in order over named blobs.

Shapes are inferred while the layers are built (each layer runs once on zeros), so convolutions and inner
products know their input sizes, as Caffe's own Reshape pass does. Parameter blobs from a ``.caffemodel``
load by layer name.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

from zoo_caffe.layers import INPUT_TYPES, InnerProduct, build_layer
from zoo_caffe.reader import Layer, Net
from zoo_core.errors import WeightsFormatError

__all__ = ["CaffeNetwork"]


class CaffeNetwork(nn.Module):
    def __init__(self, net: Net, input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        layers = [layer for layer in net.layers if not layer.phase_train_only]
        declared = dict(net.inputs)
        for layer in layers:
            if layer.type == "Input" and layer.params.input_param.shape:
                declared[layer.tops[0]] = tuple(int(d) for d in layer.params.input_param.shape[0].dim)
            elif layer.type in INPUT_TYPES:
                declared.setdefault(layer.tops[0], ())
        if len(declared) != 1:
            raise WeightsFormatError(f"'{net.name}': zoo converts nets with one input blob, found {list(declared)}")
        self.input_name, shape = next(iter(declared.items()))
        dims = input_shape or shape
        if len(dims) != 4:
            raise WeightsFormatError(f"'{net.name}': the input blob '{self.input_name}' declares no N,C,H,W shape")
        self.input_shape: tuple[int, ...] = (1, *dims[1:])
        self.layers = nn.ModuleDict()
        self.wiring: list[tuple[str, list[str], list[str]]] = []  # (module key, bottoms, tops)
        self.caffe_names: dict[str, str] = {}  # module key → Caffe layer name
        self.caffe_types: dict[str, str] = {}
        self.spatial: dict[str, tuple[int, ...]] = {}  # module key → (H, W) of its output, for 4-D outputs
        blobs: dict[str, torch.Tensor] = {self.input_name: torch.zeros(self.input_shape)}
        for layer in layers:
            if layer.type in INPUT_TYPES:
                continue
            self._add(layer, blobs)
        self.output_name = self.wiring[-1][2][0]

    def _add(self, layer: Layer, blobs: dict[str, torch.Tensor]) -> None:
        missing = [name for name in layer.bottoms if name not in blobs]
        if missing:
            raise WeightsFormatError(f"layer '{layer.name}' reads blob(s) {missing} that no earlier layer writes")
        module = build_layer(layer, [tuple(blobs[name].shape) for name in layer.bottoms])
        key = re.sub(r"\W", "_", layer.name) or "layer"
        while key in self.layers:
            key += "_"
        self.layers[key] = module
        self.wiring.append((key, layer.bottoms, layer.tops))
        self.caffe_names[key], self.caffe_types[key] = layer.name, layer.type
        with torch.no_grad():
            outputs = module.eval()(*[blobs[name] for name in layer.bottoms])
        if outputs.dim() == 4:
            self.spatial[key] = tuple(outputs.shape[2:])
        for top in layer.tops:
            blobs[top] = outputs

    def forward(self, x: torch.Tensor, until: str | None = None) -> torch.Tensor:
        """Run the net on `x`; `until` stops after the layer with that module key and returns its output."""
        blobs = {self.input_name: x}
        for key, bottoms, tops in self.wiring:
            out: torch.Tensor = self.layers[key](*[blobs[name] for name in bottoms])
            for top in tops:
                blobs[top] = out
            if key == until:
                return out
        return blobs[self.output_name]

    def load_blobs(self, weights: dict[str, list[np.ndarray]], source: str) -> None:
        """Copy each layer's Caffe blobs into its parameters, checking every count."""
        for key, module in self.layers.items():
            names = getattr(module, "blob_names", ())
            if not names:
                continue
            caffe_name = self.caffe_names[key]
            blobs = weights.get(caffe_name)
            if blobs is None:
                raise WeightsFormatError(f"{source}: no weights for layer '{caffe_name}' ({self.caffe_types[key]})")
            blobs = list(blobs)
            if isinstance(module, InnerProduct) and module.transpose:  # stored as (inputs, outputs)
                blobs[0] = blobs[0].reshape(module.in_features, -1).T
            if self.caffe_types[key] == "BatchNorm":  # mean and variance are stored times a scale-factor blob
                if len(blobs) != 3:
                    raise WeightsFormatError(f"{source}: BatchNorm layer '{caffe_name}' has {len(blobs)} blob(s), "
                                             "needs 3 (mean, variance, scale factor)")  # fmt: skip
                factor = float(blobs[2].reshape(-1)[0])
                scale = 0.0 if factor == 0 else 1.0 / factor
                blobs = [blobs[0] * scale, blobs[1] * scale]
            needed = [name for name in names if getattr(module, name, None) is not None]
            if len(blobs) < len(needed):
                raise WeightsFormatError(
                    f"{source}: layer '{caffe_name}' has {len(blobs)} blob(s), needs {len(needed)}"
                )
            for name, blob in zip(needed, blobs, strict=False):
                target = getattr(module, name)
                if blob.size != target.numel():
                    raise WeightsFormatError(f"{source}: layer '{caffe_name}' blob '{name}' has {blob.size} values, "
                                             f"the net definition needs {tuple(target.shape)}")  # fmt: skip
                with torch.no_grad():
                    target.copy_(torch.from_numpy(np.ascontiguousarray(blob, dtype=np.float32)).reshape(target.shape))
