"""The plugin's own finding for `zoo check`: is the ink light on a dark ground, as digits_cnn learnt it?

scikit-learn's digits are light strokes on black. Dark ink on white paper (a scan, a photo of a page) passes
every check zoo makes itself — size, colour mode, classes — yet reaches the network as the negative of what
it learnt, and its accuracy collapses. The ground is what most of a digit's pixels show, so a picture
whose median grey (as the network sees it, after zoo's own resize and crop) is above mid-grey is dark ink
on a light ground.
"""

from __future__ import annotations

from pathlib import Path

from zoo_core.checks import Finding
from zoo_core.errors import DataError
from zoo_core.images import decode, image_files, prepare
from zoo_core.specs import ImageInput

SAMPLE = 500  # images looked at, spread over the folder (every class): enough to tell, quick on any folder


def _light_ground(path: Path, spec: ImageInput) -> bool | None:
    """Whether the picture is dark ink on a light ground; None for a file that cannot be read (zoo's own
    check reports it)."""
    import numpy as np

    try:
        picture = prepare(decode(path), spec).convert("L")
    except DataError:
        return None
    return float(np.median(np.asarray(picture))) > 127


def ink_finding(data: Path, spec: ImageInput) -> Finding | None:
    """The `ink` finding for an image or a folder: ok when most images are light on dark, a warning with the
    fix when most are dark on light; None when there is no image to look at."""
    files = [data] if data.is_file() else image_files(data) if data.is_dir() else []
    sample = files[:: max(1, len(files) // SAMPLE)][:SAMPLE]
    grounds = [ground for ground in (_light_ground(path, spec) for path in sample) if ground is not None]
    if not grounds:
        return None
    light = sum(grounds)
    if light * 2 > len(grounds):
        return Finding(
            "ink",
            "warn",
            f"{light} of {len(grounds)} images are dark ink on a light ground; digits_cnn learnt light ink on black",
            "invert your images (PIL.ImageOps.invert) before training or predicting",
        )
    return Finding("ink", "ok", f"{len(grounds) - light} of {len(grounds)} images are light ink on a dark ground")
