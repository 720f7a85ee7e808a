"""`zoo_core.zero_shot`: classify texts against label names with no training.

Texts and labels are embedded by the same model — a sentence encoder's features, or the mean of word
vectors — and each text gets the labels ranked by cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoo_core.errors import PluginError
from zoo_core.loading import load
from zoo_core.specs import ModelSpec

__all__ = ["zero_shot"]


def zero_shot(model: str | ModelSpec, texts: Sequence[str], labels: Sequence[str]) -> list[list[tuple[str, float]]]:
    """For each text, every label with its cosine similarity, best first."""
    import numpy as np

    encoder: Any = load(model)
    if not hasattr(encoder, "embed"):
        raise PluginError(
            f"'{encoder.spec.name if hasattr(encoder, 'spec') else model}' cannot embed texts: "
            "zero-shot needs a text or word-vector model"
        )
    if len(labels) < 2:
        raise ValueError("zero-shot needs two or more labels")

    def unit(rows: Any) -> Any:
        rows = np.asarray(rows, dtype=np.float32)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    scores = unit(encoder.embed(list(texts))) @ unit(encoder.embed(list(labels))).T
    return [sorted(zip(labels, map(float, row), strict=True), key=lambda pair: -pair[1]) for row in scores]
