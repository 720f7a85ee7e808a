"""Features of a frozen backbone, computed once per model, preprocessing and dataset, and cached on disk.

The cache key holds the model name and the sha256 of every weight file (the record's, so a URL model and
a hub model are keyed alike and new weights under an old name or revision miss the cache), `drop_last`,
the preprocessing (its repr) and the dataset fingerprint, so a second run on the same data reuses the
features and any change recomputes them.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm  # type: ignore[import-untyped]

from zoo_core.images import decode
from zoo_core.training.data import Dataset

__all__ = ["batches", "cached_features", "features_cache", "quiet"]


def quiet() -> bool:
    """Progress bars only where a person watches: on a terminal."""
    return not sys.stderr.isatty()


def batches(
    dataset: Dataset, transform: Any, batch_size: int, order: list[int] | None = None
) -> Iterator[tuple[Any, torch.Tensor]]:
    """(inputs, labels) batches: image tensors through `transform`, or lists of texts. An image that cannot
    be decoded (its header and end marker passed `load_dataset`'s test, its pixels did not) is a `DataError`
    naming the file."""
    order = list(range(len(dataset.items))) if order is None else order
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        labels = torch.tensor([dataset.labels[i] for i in chosen])
        if dataset.kind == "image":
            yield torch.stack([transform(decode(Path(dataset.items[i]))) for i in chosen]), labels
        else:
            yield [dataset.items[i] for i in chosen], labels


def features_cache() -> Path:
    """The folder of cached features, under zoo's home."""
    from zoo_core.settings import Settings

    return Settings.from_env().home / "features"


def compute_features(
    backbone: Any, dataset: Dataset, transform: Any, batch_size: int, label: str = "features"
) -> np.ndarray:
    if dataset.kind == "text" and not isinstance(backbone, torch.nn.Module):  # word vectors
        return np.asarray(backbone.embed(dataset.items), dtype=np.float32)
    backbone.eval()
    rows = []
    steps = -(-len(dataset.items) // batch_size)
    with torch.no_grad():
        for inputs, _ in tqdm(batches(dataset, transform, batch_size), label, steps, leave=False, disable=quiet()):
            rows.append(backbone.features(inputs).float().cpu().numpy())
    return np.concatenate(rows)


def cached_features(
    backbone: Any,
    key_parts: list[str],
    dataset: Dataset,
    transform: Any,
    batch_size: int,
    cache: Path,
    label: str = "features",
) -> np.ndarray:
    """`backbone`'s features of `dataset`, read from `cache` when computed before, else computed (with a
    progress bar named `label`) and stored whole or not at all."""
    key = hashlib.sha256("\n".join([*key_parts, repr(transform), dataset.fingerprint()]).encode()).hexdigest()[:32]
    path = cache / f"{key}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    features = compute_features(backbone, dataset, transform, batch_size, label)
    cache.mkdir(parents=True, exist_ok=True)
    # a name of its own: another process (a `zoo rank` beside a `zoo finetune`) may write the same features
    with tempfile.NamedTemporaryFile(dir=cache, prefix=f"{key}.", suffix=".tmp", delete=False) as partial:
        np.save(partial, features)
    Path(partial.name).replace(path)
    return features
