"""Image files as `zoo check`, training and `zoo predict` all read them, so the three cannot disagree.

Which files are images, whether one can be used, how grayscale deeper than 8 bits becomes 8 bits, and the
resize and crop a spec's `crop_mode` asks for (timm's eval transform, pixel for pixel). A file the check
calls unreadable is one training skips; the pixels training sees are the pixels predict sees.

Pillow and numpy only, imported where used: the check and predict run without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo_core.errors import DataError
from zoo_core.specs import ImageInput

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

__all__ = [
    "DEEP_MODES",
    "IMAGE_SUFFIXES",
    "Header",
    "class_folders",
    "decode",
    "eight_bit",
    "image_files",
    "labelled_images",
    "normalised",
    "prepare",
    "read_header",
    "read_headers",
    "resized_size",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
_SIXTEEN_BIT = "16-bit grayscale, divided by 257 (0-65535 onto 0-255)"
_STRETCHED = "grayscale, stretched from its darkest to its brightest pixel onto 0-255"
# Grayscale Pillow keeps deeper than 8 bits, and what `eight_bit` does with it (the check quotes this).
DEEP_MODES = {
    "I;16": _SIXTEEN_BIT,
    "I;16B": _SIXTEEN_BIT,
    "I;16L": _SIXTEEN_BIT,
    "I;16N": _SIXTEEN_BIT,
    "I": f"32-bit {_STRETCHED}",
    "F": f"floating-point {_STRETCHED}",
}


@dataclass(frozen=True, slots=True)
class Header:
    """What an image file's header says, without decoding its pixels."""

    width: int
    height: int
    mode: str  # Pillow's colour mode: RGB, L, I;16, …


def class_folders(data: Path) -> list[Path]:
    """The subfolders of `data` that name classes, sorted; hidden ones are left out (none for a file)."""
    return sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith(".")) if data.is_dir() else []


def image_files(folder: Path) -> list[Path]:
    """The image files under `folder`, at any depth, sorted; hidden files and folders are left out."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


def _complete(path: Path, kind: str | None) -> bool:
    """Whether a JPEG or PNG file has its end marker (a truncated download does not)."""
    if kind not in ("JPEG", "PNG"):
        return True
    with path.open("rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(handle.tell() - 16, 0))
        tail = handle.read()
    return b"\xff\xd9" in tail[-4:] if kind == "JPEG" else b"IEND" in tail


def labelled_images(data: Path) -> list[tuple[Path, str]]:
    """(image file, class) for each image in the class folders of `data`: what training learns from."""
    return [(path, folder.name) for folder in class_folders(data) for path in image_files(folder)]


def _reason(error: Exception, path: Path) -> str:
    """Pillow's message in a few words, without the path it quotes (the caller names the file)."""
    return str(error).splitlines()[0].replace(f" {str(path)!r}", "")[:80]


def read_header(path: Path) -> Header | str:
    """The file's header, or why the file cannot be used: not an image Pillow reads, truncated (a JPEG or
    PNG without its end marker), or more pixels than Pillow decodes safely (its decompression-bomb limit).

    Reads the header and the last bytes only, so a folder of 10,000 images is checked in seconds.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if not _complete(path, image.format):
                return "truncated: the file ends before its end marker"
            return Header(image.width, image.height, image.mode)
    except Image.DecompressionBombError as error:
        # Pillow's message: "Image size (N pixels) exceeds limit of M pixels, could be decompression bomb …"
        return f"too large to decode safely: {str(error).split(',')[0]}"
    except (UnidentifiedImageError, OSError, ValueError) as error:
        return _reason(error, path)


def read_headers(paths: list[Path]) -> tuple[dict[Path, Header], list[str]]:
    """The headers of the files that can be used, and "path (why not)" for each of the others, in order."""
    headers, unreadable = {}, []
    for path in paths:
        found = read_header(path)
        if isinstance(found, str):
            unreadable.append(f"{path} ({found})")
        else:
            headers[path] = found
    return headers, unreadable


def decode(path: Path) -> Image:
    """The file's pixels, loaded; a `DataError` naming the file when they cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()  # closing the file leaves the opened image unusable
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: not a readable image ({_reason(error, path)}); re-save or delete it") from None


def eight_bit(image: Image) -> Image:
    """Grayscale deeper than 8 bits as 8-bit grayscale ("L"); any other image unchanged.

    Pillow's own conversion clips at 255, so a 16-bit gradient would reach the network as two values.
    16-bit images are divided by 257, which maps 0-65535 onto 0-255 with one scale for every image (a dark
    image stays dark). 32-bit integer and float images have no fixed range: each is stretched from its
    darkest to its brightest finite pixel (NaN and infinities become the darkest); a flat one is black.
    """
    import numpy as np
    from PIL import Image

    if image.mode not in DEEP_MODES:
        return image
    pixels = np.asarray(image)
    if image.mode.startswith("I;16"):
        eight = (pixels.astype(np.uint32) + 128) // 257  # rounded: k * 257 becomes exactly k
    else:
        values = pixels.astype(np.float64)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        values = np.where(np.isfinite(values), values, low)
        eight = np.rint((values - low) * (255 / (high - low))) if high > low else np.zeros_like(values)
    return Image.fromarray(eight.astype(np.uint8))


def resized_size(width: int, height: int, spec: ImageInput) -> tuple[int, int]:
    """(width, height) an image is resized to before the crop, exactly as timm's eval transform does.

    center: the short side becomes floor(size / crop_pct) (torchvision truncates the long side); squash:
    both sides become floor(side / crop_pct), the aspect ratio is not kept; border: the long side does, and
    the rest is padded. A non-square center target fits the short side as timm's ResizeKeepRatio does.
    """
    scale_height, scale_width = math.floor(spec.height / spec.crop_pct), math.floor(spec.width / spec.crop_pct)
    if spec.crop_mode == "squash":
        return scale_width, scale_height
    if spec.crop_mode == "center" and scale_height == scale_width:
        short, long = sorted((width, height))
        resized_long = int(scale_height * long / short)
        return (scale_height, resized_long) if width <= height else (resized_long, scale_height)
    ratios = (height / scale_height, width / scale_width)
    ratio = max(ratios) if spec.crop_mode == "border" else min(ratios)
    return max(1, round(width / ratio)), max(1, round(height / ratio))


def _mean_colour(spec: ImageInput) -> int | tuple[int, ...]:
    """The pixel that normalises to zero: what `border` pads with (timm's round(255 * mean))."""
    low, high = spec.value_range
    mean = spec.mean[::-1] if spec.channel_order == "BGR" else spec.mean  # the image is still RGB here
    colour = tuple(round(255 * value / (high - low)) for value in mean)
    return colour[0] if spec.channels == 1 else colour


def _crop_or_pad(image: Image, width: int, height: int, fill: int | tuple[int, ...]) -> Image:
    """The centre `width` x `height`, padded with `fill` where the image is smaller (torchvision's rounding)."""
    from PIL import Image

    if width > image.width or height > image.height:
        padded = Image.new(image.mode, (max(width, image.width), max(height, image.height)), fill)
        padded.paste(image, (max(0, (width - image.width) // 2), max(0, (height - image.height) // 2)))
        image = padded
    top, left = round((image.height - height) / 2), round((image.width - width) / 2)
    return image.crop((left, top, left + width, top + height))


def prepare(image: Image, spec: ImageInput) -> Image:
    """The picture the network sees, still as 8-bit pixels: deep grayscale scaled (`eight_bit`), converted to
    the spec's colour mode (alpha dropped, palettes and CMYK expanded), resized and cropped per `crop_mode`."""
    from PIL import Image

    image = eight_bit(image)
    mode = "L" if spec.channels == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    size = resized_size(image.width, image.height, spec)
    if size != image.size:
        image = image.resize(size, Image.Resampling[spec.interpolation.upper()])
    return _crop_or_pad(image, spec.width, spec.height, _mean_colour(spec) if spec.crop_mode == "border" else 0)


def normalised(image: Image, spec: ImageInput) -> np.ndarray:
    """`prepare`d pixels as the network's float32 CHW input: 0-1, the spec's value range and channel order,
    then (x - mean) / std — what the training transform computes with torch, in numpy."""
    import numpy as np

    pixels = np.asarray(prepare(image, spec), dtype=np.float32).reshape(spec.height, spec.width, -1)
    pixels = pixels.transpose(2, 0, 1) / 255.0
    low, high = spec.value_range
    pixels = pixels * (high - low)
    if spec.channel_order == "BGR":
        pixels = pixels[::-1]
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    normalised: np.ndarray = (pixels - mean[:, None, None]) / std[:, None, None]
    return normalised
