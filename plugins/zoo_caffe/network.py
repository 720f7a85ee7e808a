"""`CaffeNetwork`: a Caffe net definition as one torch module that runs its layers in order over named blobs.

The net is built on torch's meta device, where no memory is allocated: each layer runs once on shapes
alone, so convolutions and inner products know their input sizes (as Caffe's own Reshape pass does), and a
definition whose layers make no sense, or would need more than Caffe's limit of values in one blob, fails
before anything is allocated. Parameters become real memory only when weights arrive — blobs from a
``.caffemodel`` (`load_blobs`, by layer name, each count checked first) or a converted state dict
(`load_weights`) — so a file can make zoo allocate no more than it holds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from zoo_caffe.deploy_net import deploy_net
from zoo_caffe.layers import InnerProduct, build_layer
from zoo_caffe.reader import CAFFE_MAX_COUNT, Layer, Net
from zoo_core.errors import WeightsFormatError

__all__ = ["CaffeNetwork"]

LAYER_ERRORS = (ValueError, RuntimeError, IndexError, TypeError)  # what torch and `build_layer` raise on bad values


class CaffeNetwork(nn.Module):
    def __init__(self, net: Net, input_shape: tuple[int, ...] | None = None) -> None:
        """The deploy net of `net` (see `deploy_net`; `input_shape` is its C, H, W), with meta parameters."""
        super().__init__()
        self.net = deploy_net(net, input_shape)
        ((self.input_name, self.input_shape),) = self.net.inputs.items()
        self.layers = nn.ModuleDict()
        self.wiring: list[tuple[str, list[str], list[str]]] = []  # (module key, bottoms, tops)
        self.caffe_names: dict[str, str] = {}  # module key → Caffe layer name
        self.caffe_types: dict[str, str] = {}
        self.spatial: dict[str, tuple[int, ...]] = {}  # module key → (H, W) of its output, for 4-D outputs
        self.shapes: dict[str, tuple[int, ...]] = {self.input_name: self.input_shape}  # blob → shape
        blobs = {self.input_name: torch.empty(self.input_shape, device="meta")}
        for layer in self.net.layers:
            self._add(layer, blobs)
        self.output_name = self.wiring[-1][2][0]

    def _add(self, layer: Layer, blobs: dict[str, torch.Tensor]) -> None:
        where = f"{self.net.source}: layer '{layer.name}' ({layer.type})"
        missing = [name for name in layer.bottoms if name not in blobs]
        if missing:
            raise WeightsFormatError(f"{where} reads blob(s) {missing} that no earlier layer writes")
        try:
            with torch.device("meta"):
                module = build_layer(layer, [tuple(blobs[name].shape) for name in layer.bottoms])
                outputs = module.eval()(*[blobs[name] for name in layer.bottoms])
        except LAYER_ERRORS as error:
            raise WeightsFormatError(f"{where}: {_reason(error)}") from None
        for tensor in (*module.parameters(), outputs):
            if tensor.numel() > CAFFE_MAX_COUNT:
                raise WeightsFormatError(
                    f"{where} makes a blob of shape {tuple(tensor.shape)}: more than the "
                    f"{CAFFE_MAX_COUNT:,} values Caffe allows in one"
                )
        key = re.sub(r"\W", "_", layer.name) or "layer"
        while key in self.layers:
            key += "_"
        self.layers[key] = module
        self.wiring.append((key, layer.bottoms, layer.tops))
        self.caffe_names[key], self.caffe_types[key] = layer.name, layer.type
        if outputs.dim() == 4:
            self.spatial[key] = tuple(outputs.shape[2:])
        for top in layer.tops:
            blobs[top], self.shapes[top] = outputs, tuple(outputs.shape)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shapes[self.output_name]

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

    def split_off(self, key: str) -> nn.Module:
        """Remove the layer `key` and every layer after it, and return that layer: the net's output becomes
        what it read. (A backbone's classifier, then, is its own module and not also one of the net's.)"""
        index = [entry[0] for entry in self.wiring].index(key)
        module = self.layers[key]
        self.output_name = self.wiring[index][1][0]
        for removed, _, _ in self.wiring[index:]:
            del self.layers[removed]
            self.spatial.pop(removed, None)
        self.wiring = self.wiring[:index]
        return module

    def load_weights(self, path: Path) -> None:
        """A state dict this class wrote (`zoo convert caffe`'s model.safetensors), in place of the meta
        parameters; every name and shape must match the definition."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            self.load_state_dict(load_file(path), assign=True)
        except (RuntimeError, SafetensorError, OSError) as error:
            raise WeightsFormatError(
                f"{path}: does not fit {self.net.source} ({_reason(error)}); convert it again"
            ) from None

    def load_blobs(self, weights: dict[str, list[np.ndarray]], source: str) -> None:
        """Each layer's Caffe blobs as its parameters, every count checked before any memory is taken."""
        for key, module in self.layers.items():
            if getattr(module, "blob_names", ()):
                module.load_state_dict(self._layer_state(key, module, weights, source), strict=False, assign=True)
        counters = {
            name: torch.zeros_like(buffer, device="cpu") for name, buffer in self.named_buffers() if buffer.is_meta
        }
        self.load_state_dict(counters, strict=False, assign=True)  # BatchNorm's batch count: Caffe keeps none

    def _layer_state(
        self, key: str, module: nn.Module, weights: dict[str, list[np.ndarray]], source: str
    ) -> dict[str, torch.Tensor]:
        caffe_name = self.caffe_names[key]
        blobs = weights.get(caffe_name)
        if blobs is None:
            raise WeightsFormatError(f"{source}: no weights for layer '{caffe_name}' ({self.caffe_types[key]})")
        names = [name for name in getattr(module, "blob_names", ()) if getattr(module, name, None) is not None]
        if self.caffe_types[key] == "BatchNorm":  # mean and variance are stored times a scale-factor blob
            if len(blobs) != 3 or blobs[2].size != 1:
                raise WeightsFormatError(
                    f"{source}: BatchNorm layer '{caffe_name}' has blobs of shapes "
                    f"{[b.shape for b in blobs]}, needs 3 (mean, variance, scale factor)"
                )
            factor = float(blobs[2].reshape(-1)[0])
            scale = 0.0 if factor == 0 else 1.0 / factor
            blobs = [blobs[0] * scale, blobs[1] * scale]
        if len(blobs) < len(names):
            raise WeightsFormatError(f"{source}: layer '{caffe_name}' has {len(blobs)} blob(s), needs {len(names)}")
        state = {}
        for name, blob in zip(names, blobs, strict=False):
            target = getattr(module, name)
            if blob.size != target.numel():
                raise WeightsFormatError(
                    f"{source}: layer '{caffe_name}' blob '{name}' has {blob.size:,} values, "
                    f"the net definition needs {tuple(target.shape)}"
                )
            if isinstance(module, InnerProduct) and module.transpose and name == "weight":  # stored (inputs, outputs)
                blob = blob.reshape(module.in_features, module.out_features).T
            state[name] = torch.from_numpy(np.ascontiguousarray(blob, dtype=np.float32)).reshape(target.shape)
        return state


def _reason(error: Exception) -> str:
    """The line of an error's message that says what is wrong (torch heads some with a line ending in ':')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    telling = [line for line in lines if not line.endswith(":")]
    return (telling or lines or [type(error).__name__])[0]
