"""zoo's own check of a user's images against an image model's input spec, fast: headers, not pixels.

It serves every image model, whichever plugin builds it (timm, torchvision, Caffe, a third party's), so
disabling a plugin never disables the check.

Which files are images and which of them can be read is `zoo_core.images`' answer, the one training
uses, so a file reported here as skipped is one training skips. Reads each file's header (size, colour
mode) and the last bytes of JPEG and PNG files (a truncated file lacks its end marker); hashes only files
that share a byte size, to find duplicates. A folder of 10,000 images is checked in seconds
(bench/bench_check.py).
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo_core.checks import CheckReport, Finding, Level
from zoo_core.image_transform import build_transform
from zoo_core.images import (
    DEEP_MODES,
    IMAGE_SUFFIXES,
    Header,
    class_folders,
    labelled_images,
    read_headers,
    resized_size,
)
from zoo_core.specs import ImageInput, ModelSpec

__all__ = ["check_array", "check_folder", "check_images", "labelled_files"]

FEW_SAMPLES = 5  # fewer images than this in a class: a warning
IMBALANCE = 10  # largest class over smallest beyond this: a warning
UPSCALE = 4  # resizing images up by more than this: a warning
STRETCH = 2  # squash mode changing an image's aspect ratio by more than this: a warning
NETWORK_STRIDE = 32  # total downsampling of the classic CNNs: a 224 px input ends as a 7x7 feature map
_CONVERSIONS = {
    "L": "grayscale, replicated to 3 channels",
    "LA": "grayscale with alpha, alpha dropped and grey replicated to 3 channels",
    "1": "1-bit, expanded to 3 channels",
    "P": "palette, expanded to RGB",
    "PA": "palette with alpha, expanded to RGB and alpha dropped",
    "RGBA": "RGBA, alpha channel dropped",
    "CMYK": "CMYK, converted to RGB",
    "YCbCr": "YCbCr, converted to RGB",
} | {mode: f"{scaling}, replicated to 3 channels" for mode, scaling in DEEP_MODES.items()}


@dataclass(frozen=True, slots=True)
class _Image:
    path: Path
    label: str | None
    header: Header


def _loose_images(data: Path) -> list[Path]:
    return sorted(p for p in data.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def labelled_files(data: Path) -> list[tuple[Path, str | None]]:
    """With class folders, the images in them, as training reads them; otherwise the images in `data`."""
    if data.is_file():
        return [(data, None)]
    labelled: list[tuple[Path, str | None]] = list(labelled_images(data))
    return labelled if class_folders(data) else [(path, None) for path in _loose_images(data)]


def _duplicates(images: list[_Image]) -> list[list[Path]]:
    by_size: dict[int, list[Path]] = defaultdict(list)
    for image in images:
        by_size[image.path.stat().st_size].append(image.path)
    groups: dict[str, list[Path]] = defaultdict(list)
    for paths in by_size.values():
        if len(paths) > 1:
            for path in paths:
                groups[hashlib.sha256(path.read_bytes()).hexdigest()].append(path)
    return [paths for paths in groups.values() if len(paths) > 1]


def _size_findings(spec: ImageInput, sizes: list[tuple[int, int]], where: str) -> list[Finding]:
    shorts = sorted(min(w, h) for w, h in sizes)
    summary = f"short side {shorts[0]}-{shorts[-1]} px (median {statistics.median(shorts):g}) in {where}; "
    summary += f"the model sees {spec.height}x{spec.width}"
    cells = math.ceil(min(spec.height, spec.width) / NETWORK_STRIDE)  # side of the final feature map
    tiny = [s for s in shorts if s < cells]
    if tiny:
        return [
            Finding(
                "image-size",
                "error",
                f"{len(tiny)} image(s) are under {cells} px ({summary}): fewer pixels than the {cells}x{cells} "
                f"feature map the network ends with after its {NETWORK_STRIDE}x downsampling",
                "use larger images, or a model trained on images this small",
            )
        ]
    growth = []  # (factor, side before, side after) for each image, along the side that grows most
    for width, height in sizes:
        resized_width, resized_height = resized_size(width, height, spec)
        growth.append(
            max((resized_width / width, width, resized_width), (resized_height / height, height, resized_height))
        )
    upscaled = sorted((g for g in growth if g[0] > UPSCALE), reverse=True)
    if not upscaled:
        return [Finding("image-size", "ok", summary)]
    factor, before, after = upscaled[0]
    return [
        Finding(
            "image-size",
            "warn",
            f"{len(upscaled)} image(s) are upscaled over {UPSCALE}x (up to {factor:.0f}x: {before} -> {after} px); "
            f"{summary}",
            "fine for transfer, but each pixel becomes a blur; a model with a smaller input may fit better",
        )
    ]


def _geometry(spec: ImageInput) -> str:
    """The resize and crop `crop_mode` asks for, in words."""
    scaled_height, scaled_width = math.floor(spec.height / spec.crop_pct), math.floor(spec.width / spec.crop_pct)
    scaled = f"{scaled_height} px" if scaled_height == scaled_width else f"{scaled_height}x{scaled_width} px"
    crop = f"centre-cropping {spec.height}x{spec.width} (crop_pct {spec.crop_pct}, crop_mode {spec.crop_mode})"
    if spec.crop_mode == "squash":
        return f"squashing to {scaled_height}x{scaled_width} px (aspect ratio not kept) and {crop}"
    if spec.crop_mode == "border":
        return f"resizing the long side to {scaled}, padding with the mean colour and {crop}"
    return f"resizing the short side to {scaled} and {crop}"


def _aspect_findings(spec: ImageInput, sizes: list[tuple[int, int]]) -> list[Finding]:
    """How much of each image the resize and crop keep, and what they cost: lost edges (center), stretched
    shapes (squash) or padding (border)."""
    ratios = [max(w, h) / min(w, h) for w, h in sizes]
    kept, padding, stretch = [], [], []
    for width, height in sizes:
        resized_width, resized_height = resized_size(width, height, spec)
        visible = min(resized_width, spec.width) * min(resized_height, spec.height)
        kept.append(visible / (resized_width * resized_height))
        padding.append(1 - visible / (spec.width * spec.height))
        change = (width / height) / (resized_width / resized_height)
        stretch.append(max(change, 1 / change))
    message = (
        f"aspect ratio {min(ratios):.2f}-{max(ratios):.2f}; {_geometry(spec)} keeps "
        f"{statistics.mean(kept):.0%} of the image area on average"
    )
    if spec.crop_mode == "squash":
        message += f" and stretches shapes up to {max(stretch):.2f}x"
        count, problem = sum(1 for s in stretch if s > STRETCH), f"are stretched over {STRETCH}x"
        fix = f"crop the images to the model's aspect ratio ({spec.width}:{spec.height}) first if shapes matter"
    elif spec.crop_mode == "border":
        message += f"; padding fills {statistics.mean(padding):.0%} of the input on average"
        count, problem = sum(1 for p in padding if p > 0.5), "are over half padding"
        fix = f"crop the images closer to the model's aspect ratio ({spec.width}:{spec.height}) first"
    else:
        count, problem = sum(1 for k in kept if k < 0.5), "lose over half"
        fix = "crop or pad the images to a square first if the edges matter"
    if count > len(sizes) / 10:
        return [Finding("aspect-ratio", "warn", f"{message}; {count} image(s) {problem}", fix)]
    return [Finding("aspect-ratio", "ok", message)]


def _channel_findings(spec: ImageInput, modes: Counter[str]) -> list[Finding]:
    wanted = "L" if spec.channels == 1 else "RGB"
    others = {mode: count for mode, count in modes.items() if mode != wanted}
    if not others:
        return [Finding("channels", "ok", f"all images are {wanted}")]
    if wanted == "L":
        conversions = {mode: DEEP_MODES.get(mode, f"{mode}, converted to grayscale") for mode in others}
    else:
        conversions = {mode: _CONVERSIONS.get(mode, f"{mode}, converted") for mode in others}
    described = "; ".join(f"{count} {conversions[mode]}" for mode, count in others.items())
    return [
        Finding(
            "channels", "warn", f"the model takes {wanted}: {described}", "nothing to do: the transform converts them"
        )
    ]


def _class_findings(labels: Counter[str | None], folders: list[str]) -> list[Finding]:
    if not folders:
        return [Finding("classes", "ok", f"{sum(labels.values())} images, no class folders (unlabelled data)")]
    counts = {name: labels.get(name, 0) for name in folders}
    findings = []
    empty = [name for name, count in counts.items() if count == 0]
    few = [name for name, count in counts.items() if 0 < count < FEW_SAMPLES]
    if empty:
        findings.append(
            Finding(
                "classes",
                "error",
                f"class folder(s) with no readable image: {', '.join(empty)}",
                "add images or remove the folder",
            )
        )
    if few:
        findings.append(
            Finding(
                "classes",
                "warn",
                f"classes with fewer than {FEW_SAMPLES} images: {', '.join(f'{n} ({counts[n]})' for n in few)}",
                "add images, or expect noisy results",
            )
        )
    present = [count for count in counts.values() if count]
    if present and max(present) > IMBALANCE * min(present):
        findings.append(
            Finding(
                "balance",
                "warn",
                f"class sizes range {min(present)}-{max(present)}",
                "use class weights or resample (fine-tuning can do both)",
            )
        )
    if not findings:
        findings.append(Finding("classes", "ok", f"{len(folders)} classes, {min(present)}-{max(present)} images each"))
    return findings


def _file_findings(data: Path, images: list[_Image], unreadable: list[str]) -> list[Finding]:
    findings = []
    if not images:
        findings.append(Finding("files", "error", f"no readable image in {data}", "point at image files or folders"))
    if unreadable:
        level: Level = "warn" if images else "error"
        listed = "; ".join(unreadable[:5]) + (" …" if len(unreadable) > 5 else "")
        findings.append(
            Finding(
                "files",
                level,
                f"{len(unreadable)} unreadable or truncated file(s), skipped (training skips them too): {listed}",
                "re-download or delete them",
            )
        )
    loose = _loose_images(data) if data.is_dir() and class_folders(data) else []
    if loose:
        findings.append(
            Finding(
                "files",
                "warn",
                f"{len(loose)} image(s) beside the class folders belong to no class, skipped: {loose[0]}"
                + (" …" if len(loose) > 1 else ""),
                "move them into a class folder",
            )
        )
    return findings


def check_folder(spec: ModelSpec, data: Path) -> CheckReport:
    """Check an image file or folder (class subfolders, or flat) against the spec's input."""
    assert isinstance(spec.input, ImageInput)
    files = labelled_files(data)
    headers, unreadable = read_headers([path for path, _ in files])
    images = [_Image(path, label, headers[path]) for path, label in files if path in headers]
    findings = _file_findings(data, images, unreadable)
    if images:
        findings += _channel_findings(spec.input, Counter(image.header.mode for image in images))
        sizes = [(image.header.width, image.header.height) for image in images]
        findings += _size_findings(spec.input, sizes, f"{len(images)} images")
        findings += _aspect_findings(spec.input, sizes)
        duplicates = _duplicates(images)
        if duplicates:
            sample = ", ".join(f"{group[0].name} = {group[1].name}" for group in duplicates[:3])
            findings.append(
                Finding(
                    "duplicates",
                    "warn",
                    f"{sum(len(g) - 1 for g in duplicates)} duplicate file(s): {sample}",
                    "remove duplicates: they leak between training and validation",
                )
            )
    if data.is_dir():
        folders = [folder.name for folder in class_folders(data)]
        findings += _class_findings(Counter(image.label for image in images), folders)
    return CheckReport(spec.name, tuple(findings))


def check_array(spec: ModelSpec, batch: Any) -> CheckReport:
    """Check an in-memory batch (numpy array or torch tensor, NCHW or NHWC) against the spec's input."""
    import numpy as np

    assert isinstance(spec.input, ImageInput)
    array = batch.detach().cpu().numpy() if hasattr(batch, "detach") else np.asarray(batch)
    findings: list[Finding] = []
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        return CheckReport(
            spec.name,
            (
                Finding(
                    "shape",
                    "error",
                    f"expected a batch of images, got shape {array.shape}",
                    "pass (N, C, H, W) or (N, H, W, C)",
                ),
            ),
        )
    channels_first = array.shape[1] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4)
    channels = array.shape[1] if channels_first else array.shape[-1]
    height, width = array.shape[2:] if channels_first else array.shape[1:3]
    layout = "NCHW" if channels_first else "NHWC"
    if channels == spec.input.channels:
        findings.append(Finding("channels", "ok", f"{channels} channels ({layout})"))
    else:
        findings.append(
            Finding(
                "channels",
                "warn",
                f"{channels} channels ({layout}), the model takes {spec.input.channels}",
                "convert: drop alpha, or replicate grey",
            )
        )
    sizes = [(int(width), int(height))] * array.shape[0]
    findings += _size_findings(spec.input, sizes, f"{array.shape[0]} arrays")
    findings += _aspect_findings(spec.input, sizes)
    low, high = float(array.min()), float(array.max())
    if array.dtype == np.uint8:
        findings.append(Finding("values", "ok", "uint8 0-255: will be scaled to 0-1, then normalised"))
    elif low < 0:
        findings.append(
            Finding(
                "values",
                "warn",
                f"{array.dtype} with values {low:.2f}..{high:.2f}: looks already normalised",
                "skip the Normalize step, or pass unnormalised pixels",
            )
        )
    elif high > 1.0:
        findings.append(
            Finding(
                "values",
                "warn",
                f"{array.dtype} with values up to {high:.1f}: 0-255 floats",
                "divide by 255 before the model's normalisation",
            )
        )
    else:
        findings.append(Finding("values", "ok", f"{array.dtype} in 0-1: will be normalised"))
    return CheckReport(spec.name, tuple(findings))


def check_images(spec: ModelSpec, data: object) -> CheckReport:
    """Check an image file or folder, or an in-memory batch, and add the preprocessing the spec asks for."""
    assert isinstance(spec.input, ImageInput)
    report = check_folder(spec, Path(data)) if isinstance(data, str | Path) else check_array(spec, data)
    return replace(report, transform=build_transform(spec.input))
