"""zoo's own check of a user's data against a model, by modality: images, texts, word-vector datasets.

This is the first part of `zoo_core.check`: the findings every model of a modality gets, whichever plugin
builds it, and for images the preprocessing transform. Plugins' findings (the `check_input` hook) are
appended after these. Nothing here imports torch, torchvision or Pillow until data is checked.
"""

from __future__ import annotations

from pathlib import Path

from zoo_core.checks import CheckReport
from zoo_core.errors import DataError
from zoo_core.image_check import check_images
from zoo_core.specs import ModelSpec
from zoo_core.text_check import check_texts

__all__ = ["check_data"]


def check_data(spec: ModelSpec, data: object) -> CheckReport:
    """Findings for `data` (a file or folder path, or an in-memory batch of images or list of texts)."""
    if isinstance(data, str | Path) and not Path(data).exists():
        raise DataError(f"{data}: no such file or folder; check the path to your data")
    return check_images(spec, data) if spec.modality == "image" else check_texts(spec, data)
