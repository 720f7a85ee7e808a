"""The preprocessing an image model needs, built from its spec: zoo's `prepare`, then torchvision's tensors.

The picture itself (bit depth, colour mode, resize, crop or pad) comes from `zoo_core.images`, the code
`zoo predict` runs with numpy, so a trained model and its export see the same pixels.
"""

from __future__ import annotations

from typing import Any

from zoo_core.images import prepare
from zoo_core.specs import ImageInput

__all__ = ["CaffeLayout", "Prepare", "build_transform"]


class Prepare:
    """PIL image to the 8-bit picture the network sees (see `zoo_core.images.prepare`)."""

    def __init__(self, spec: ImageInput) -> None:
        self.spec = spec

    def __call__(self, image: Any) -> Any:
        return prepare(image, self.spec)

    def __repr__(self) -> str:
        # part of the feature cache's key: every field that changes the picture is named
        spec = self.spec
        mode = "L" if spec.channels == 1 else "RGB"
        return (
            f"Prepare({mode}, {spec.height}x{spec.width}, crop_pct={spec.crop_pct}, crop_mode={spec.crop_mode}, "
            f"{spec.interpolation})"
        )


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
    """Prepare the picture, to tensor, normalise: timm's eval transform for the spec's `crop_mode`, plus
    the channel order and value range a Caffe model needs."""
    from torchvision import transforms

    steps: list[Any] = [Prepare(spec), transforms.ToTensor()]
    low, high = spec.value_range
    if spec.channel_order == "BGR" or (low, high) != (0.0, 1.0):
        steps.append(CaffeLayout(spec.channel_order == "BGR", high - low))
    steps.append(transforms.Normalize(spec.mean, spec.std))
    return transforms.Compose(steps)
