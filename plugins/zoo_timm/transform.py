"""The preprocessing an image model needs, built from its spec with torchvision's transforms."""

from __future__ import annotations

import math
from typing import Any

from zoo_core.specs import ImageInput

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


class ConvertMode:
    """PIL image to the colour mode the network eats: drops alpha, expands palettes, CMYK and grey."""

    def __init__(self, channels: int) -> None:
        self.mode = "L" if channels == 1 else "RGB"

    def __call__(self, image: Any) -> Any:
        return image if image.mode == self.mode else image.convert(self.mode)

    def __repr__(self) -> str:
        return f"ConvertMode({self.mode!r})"


class CaffeLayout:
    """0-1 RGB tensor to what Caffe models expect: BGR order and/or the 0-255 range."""

    def __init__(self, bgr: bool, scale: float) -> None:
        self.bgr, self.scale = bgr, scale

    def __call__(self, tensor: Any) -> Any:
        tensor = tensor * self.scale
        return tensor.flip(0) if self.bgr else tensor

    def __repr__(self) -> str:
        return f"CaffeLayout(bgr={self.bgr}, scale={self.scale})"


def build_transform(spec: ImageInput) -> Any:
    """Resize the short side to size / crop_pct, centre-crop, convert, to tensor, normalise (timm's eval
    transform, plus the channel order and value range a Caffe model needs)."""
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    scale_size = math.floor(spec.height / spec.crop_pct)
    steps: list[Any] = [
        ConvertMode(spec.channels),
        transforms.Resize(scale_size, interpolation=InterpolationMode(spec.interpolation)),
        transforms.CenterCrop((spec.height, spec.width)),
        transforms.ToTensor(),
    ]
    low, high = spec.value_range
    if spec.channel_order == "BGR" or (low, high) != (0.0, 1.0):
        steps.append(CaffeLayout(spec.channel_order == "BGR", high - low))
    steps.append(transforms.Normalize(spec.mean, spec.std))
    return transforms.Compose(steps)
