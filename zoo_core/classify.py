"""`zoo_core.classify`: a catalogue image classifier's own labels for image files, computed with torch.

This runs the pretrained network as it is (no fine-tuning, no export), with the class names of its
label set (`zoo_core.label_sets`); the pixels are those an export would see (`zoo_core.images`). A network
whose checkpoint's classifier was dropped at load is refused (`zoo_core.loading.load_classifier`): its
classes would be a random classifier's guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zoo_core.catalogue_sources import default_catalogue
from zoo_core.errors import PluginError
from zoo_core.label_sets import class_names
from zoo_core.loading import load_classifier
from zoo_core.specs import ImageInput, ModelSpec

__all__ = ["classify"]


def classify(
    model: str | ModelSpec, images: Sequence[Path], top: int = 5, batch_size: int = 32
) -> list[list[tuple[str, float]]]:
    """For each image, the model's `top` classes with their probabilities, best first."""
    import numpy as np
    import torch

    from zoo_core.images import decode, normalised

    spec = model if isinstance(model, ModelSpec) else default_catalogue().get(model)
    if not isinstance(spec.input, ImageInput) or not spec.output.num_classes:
        raise PluginError(
            f"'{spec.name}' is not an image classifier with classes of its own: fine-tune it (zoo finetune), "
            "export the run (zoo export), then run zoo predict on the export folder"
        )
    names = class_names(spec)
    network = load_classifier(spec).eval()
    found: list[list[tuple[str, float]]] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            pixels = [normalised(decode(path), spec.input) for path in images[start : start + batch_size]]
            probabilities = network(torch.from_numpy(np.stack(pixels))).softmax(dim=1)
            best = probabilities.topk(min(top, probabilities.shape[1]), dim=1)
            for values, indices in zip(best.values.tolist(), best.indices.tolist(), strict=True):
                found.append([(names[index], value) for value, index in zip(values, indices, strict=True)])
    return found
