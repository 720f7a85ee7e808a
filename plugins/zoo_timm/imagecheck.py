"""Checking a user's images against an image model's input spec, fast: headers, not pixels.

Reads each file's header (size, colour mode) with Pillow and the last bytes of JPEG and PNG files (a
truncated file lacks its end marker); hashes only files that share a byte size, to find duplicates. A
folder of 10,000 images is checked in seconds (bench/bench_check.py).
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.checks import CheckReport, Finding, Level
from zoo_core.specs import ImageInput, ModelSpec

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
FEW_SAMPLES = 5  # fewer images than this in a class: a warning
IMBALANCE = 10  # largest class over smallest beyond this: a warning
UPSCALE = 4  # resizing images up by more than this: a warning
NETWORK_STRIDE = 32  # total downsampling of the classic CNNs: a 224 px input ends as a 7x7 feature map
_CONVERSIONS = {
    "L": "grayscale, replicated to 3 channels",
    "LA": "grayscale with alpha, alpha dropped and grey replicated to 3 channels",
    "1": "1-bit, expanded to 3 channels",
    "P": "palette, expanded to RGB",
    "PA": "palette with alpha, expanded to RGB and alpha dropped",
    "RGBA": "RGBA, alpha channel dropped",
    "CMYK": "CMYK, converted to RGB",
    "I;16": "16-bit grayscale, scaled to 8 bits and replicated",
    "I": "32-bit grayscale, converted and replicated",
    "YCbCr": "YCbCr, converted to RGB",
}


@dataclass(frozen=True, slots=True)
class _Image:
    path: Path
    label: str | None
    width: int
    height: int
    mode: str


def _complete(path: Path, kind: str | None) -> bool:
    """Whether a JPEG or PNG file has its end marker (a truncated download does not)."""
    if kind not in ("JPEG", "PNG"):
        return True
    with path.open("rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(handle.tell() - 16, 0))
        tail = handle.read()
    return b"\xff\xd9" in tail[-4:] if kind == "JPEG" else b"IEND" in tail


def _labelled_files(data: Path) -> list[tuple[Path, str | None]]:
    if data.is_file():
        return [(data, None)]
    classes = sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    found: list[tuple[Path, str | None]] = [
        (p, None) for p in sorted(data.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    for folder in classes:
        found += [(p, folder.name) for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    return found


def _read_headers(files: list[tuple[Path, str | None]]) -> tuple[list[_Image], list[str]]:
    from PIL import Image, UnidentifiedImageError

    images, unreadable = [], []
    for path, label in files:
        try:
            with Image.open(path) as image:
                if not _complete(path, image.format):
                    raise OSError("truncated: the file ends before its end marker")
                images.append(_Image(path, label, image.width, image.height, image.mode))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            unreadable.append(f"{path} ({str(error).splitlines()[0][:80]})")
    return images, unreadable


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
    findings = []
    shorts = sorted(min(w, h) for w, h in sizes)
    median = statistics.median(shorts)
    target = math.floor(spec.height / spec.crop_pct)  # as the transform resizes
    summary = f"short side {shorts[0]}-{shorts[-1]} px (median {median:g}) in {where}; "
    summary += f"the model sees {spec.height}x{spec.width}"
    cells = math.ceil(min(spec.height, spec.width) / NETWORK_STRIDE)  # side of the final feature map
    tiny = [s for s in shorts if s < cells]
    if tiny:
        findings.append(
            Finding(
                "image-size",
                "error",
                f"{len(tiny)} image(s) are under {cells} px ({summary}): fewer pixels than the {cells}x{cells} "
                f"feature map the network ends with after its {NETWORK_STRIDE}x downsampling",
                "use larger images, or a model trained on images this small",
            )
        )
    elif upscaled := [side for side in shorts if target / side > UPSCALE]:
        findings.append(
            Finding(
                "image-size",
                "warn",
                f"{len(upscaled)} image(s) are upscaled over {UPSCALE}x (up to {target / upscaled[0]:.0f}x: "
                f"{upscaled[0]} -> {target} px); {summary}",
                "fine for transfer, but each pixel becomes a blur; a model with a smaller input may fit better",
            )
        )
    else:
        findings.append(Finding("image-size", "ok", summary))
    ratios = [max(w, h) / min(w, h) for w, h in sizes]
    kept = [min(1.0, spec.crop_pct**2 / ratio) for ratio in ratios]
    cut = sum(1 for fraction in kept if fraction < 0.5)
    message = (
        f"aspect ratio {min(ratios):.2f}-{max(ratios):.2f}; resizing the short side to {target} px and "
        f"centre-cropping {spec.height}x{spec.width} (crop_pct {spec.crop_pct}) keeps "
        f"{statistics.mean(kept):.0%} of the image area on average"
    )
    if cut > len(sizes) / 10:
        findings.append(
            Finding(
                "aspect-ratio",
                "warn",
                f"{message}; {cut} image(s) lose over half",
                "crop or pad the images to a square first if the edges matter",
            )
        )
    else:
        findings.append(Finding("aspect-ratio", "ok", message))
    return findings


def _channel_findings(spec: ImageInput, modes: Counter[str]) -> list[Finding]:
    wanted = "L" if spec.channels == 1 else "RGB"
    others = {mode: count for mode, count in modes.items() if mode != wanted}
    if not others:
        return [Finding("channels", "ok", f"all images are {wanted}")]
    described = "; ".join(f"{count} {_CONVERSIONS.get(mode, mode + ', converted')}" for mode, count in others.items())
    if wanted == "L":
        described = "; ".join(f"{count} {mode}, converted to grayscale" for mode, count in others.items())
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


def check_folder(spec: ModelSpec, data: Path) -> CheckReport:
    """Check an image file or folder (class subfolders, or flat) against the spec's input."""
    assert isinstance(spec.input, ImageInput)
    files = _labelled_files(data)
    images, unreadable = _read_headers(files)
    findings: list[Finding] = []
    if not images:
        findings.append(Finding("files", "error", f"no readable image in {data}", "point at image files or folders"))
    if unreadable:
        level: Level = "warn" if images else "error"
        findings.append(
            Finding(
                "files",
                level,
                f"{len(unreadable)} unreadable or truncated file(s), skipped: "
                + "; ".join(unreadable[:5])
                + (" …" if len(unreadable) > 5 else ""),
                "re-download or delete them",
            )
        )
    if images:
        findings += _channel_findings(spec.input, Counter(image.mode for image in images))
        findings += _size_findings(spec.input, [(i.width, i.height) for i in images], f"{len(images)} images")
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
        folders = sorted(p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
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
    findings += _size_findings(spec.input, [(int(width), int(height))] * array.shape[0], f"{array.shape[0]} arrays")
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
