"""Features of a frozen backbone, computed once per model, preprocessing and dataset, and cached on disk.

The cache key holds the model name and the sha256 of every weight file (the record's, so a URL model and
a hub model are keyed alike and new weights under an old name or revision miss the cache), `drop_last`,
the precision, device type, GPU model and CUDA version where they change the bits (bf16 features are not
fp32 features, nor a GPU's a CPU's), the preprocessing (its repr) and the dataset fingerprint, so a second
run on the same data reuses the features and any change recomputes them.

Images reach the backbone through a `Feeder`: decoded in this process, or by DataLoader workers.
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

from zoo_core.errors import DataError
from zoo_core.images import decode
from zoo_core.training.data import Dataset
from zoo_core.training.device import autocast, module_device, to_device

__all__ = ["Feeder", "batches", "cached_features", "chunks", "compute_features", "features_cache", "quiet"]


def quiet() -> bool:
    """Progress bars only where a person watches: on a terminal."""
    return not sys.stderr.isatty()


def chunks(order: list[int], batch_size: int) -> list[list[int]]:
    """`order` cut into batches of `batch_size` (the last one shorter)."""
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _image_batch(dataset: Dataset, transform: Any, chosen: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.stack([transform(decode(Path(dataset.items[i]))) for i in chosen])
    return images, torch.tensor([dataset.labels[i] for i in chosen])


class _Decoded(torch.utils.data.Dataset[tuple[Any, int]]):
    """An image dataset's item as (tensor, label), decoded in a loader worker. A file that cannot be decoded
    gives its `DataError` as the tensor: the training process raises it as it is, one line naming the file
    (raised in the worker, torch would hand it over wrapped in the worker's traceback)."""

    def __init__(self, dataset: Dataset, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __getitem__(self, index: int) -> tuple[Any, int]:
        try:
            return self.transform(decode(Path(self.dataset.items[index]))), self.dataset.labels[index]
        except DataError as error:
            return error, -1

    def __len__(self) -> int:
        return len(self.dataset.items)


def _stacked(pairs: list[tuple[Any, int]]) -> tuple[Any, torch.Tensor]:
    """A worker's batch: the tensors stacked, or the first item's `DataError`."""
    failed = [inputs for inputs, _ in pairs if isinstance(inputs, DataError)]
    if failed:
        return failed[0], torch.tensor([])
    return torch.stack([inputs for inputs, _ in pairs]), torch.tensor([label for _, label in pairs])


class _Plan(torch.utils.data.Sampler[list[int]]):
    """The batches of the next pass: a persistent loader reads a new plan on every pass."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class Feeder:
    """(inputs, labels) batches of one dataset, pass after pass, each pass in the batches it is given.

    With `workers`, images are decoded and transformed by that many processes of a torch DataLoader, into
    pinned memory when `pin_memory` (the copy to a GPU then runs asynchronously); the processes live as long
    as the feeder, so an epoch does not pay for starting them. The items, labels and tensors are those of
    ``workers=0``, where it all happens in this process. Texts are always read here: the backbone tokenises.
    """

    def __init__(self, dataset: Dataset, transform: Any, *, workers: int = 0, pin_memory: bool = False) -> None:
        self.dataset, self.transform = dataset, transform
        self._plan = _Plan()
        self._loader: torch.utils.data.DataLoader[Any] | None = None
        if workers > 0 and dataset.kind == "image":
            self._loader = torch.utils.data.DataLoader(
                _Decoded(dataset, transform),
                batch_sampler=self._plan,
                num_workers=workers,
                collate_fn=_stacked,
                pin_memory=pin_memory,
                persistent_workers=True,
            )

    def __call__(self, planned: list[list[int]]) -> Iterator[tuple[Any, torch.Tensor]]:
        """One pass: a batch per list of item indices in `planned`. An image that cannot be decoded (its
        header and end marker passed `load_dataset`'s test, its pixels did not) is a `DataError` naming
        the file."""
        dataset = self.dataset
        if self._loader is None:
            for chosen in planned:
                if dataset.kind == "image":
                    yield _image_batch(dataset, self.transform, chosen)
                else:
                    yield [dataset.items[i] for i in chosen], torch.tensor([dataset.labels[i] for i in chosen])
            return
        self._plan.batches = [list(chosen) for chosen in planned]
        for inputs, labels in self._loader:
            if isinstance(inputs, DataError):
                raise DataError(str(inputs)) from None
            yield inputs, labels


def batches(
    dataset: Dataset,
    transform: Any,
    batch_size: int,
    order: list[int] | None = None,
    *,
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[tuple[Any, torch.Tensor]]:
    """(inputs, labels) batches of `batch_size` in `order` (default: the dataset's): image tensors through
    `transform`, or lists of texts; one pass of a `Feeder` with `workers` and `pin_memory`."""
    order = list(range(len(dataset.items))) if order is None else order
    yield from Feeder(dataset, transform, workers=workers, pin_memory=pin_memory)(chunks(order, batch_size))


def features_cache() -> Path:
    """The folder of cached features, under zoo's home."""
    from zoo_core.settings import Settings

    return Settings.from_env().home / "features"


def compute_features(
    backbone: Any,
    dataset: Dataset,
    transform: Any,
    batch_size: int,
    label: str = "features",
    *,
    precision: str = "fp32",
    workers: int = 0,
) -> np.ndarray:
    """`backbone`'s features of `dataset` as float32 rows in dataset order, computed on the device the
    backbone is on (the caller puts it there), under autocast at `precision`, fed by `workers`."""
    if dataset.kind == "text" and not isinstance(backbone, torch.nn.Module):  # word vectors
        return np.asarray(backbone.embed(dataset.items), dtype=np.float32)
    device = module_device(backbone)
    backbone.eval()
    rows = []
    steps = -(-len(dataset.items) // batch_size)
    feed = batches(dataset, transform, batch_size, workers=workers, pin_memory=device.type == "cuda")
    with torch.no_grad():
        for inputs, _ in tqdm(feed, label, steps, leave=False, disable=quiet()):
            with autocast(device, precision):
                rows.append(backbone.features(to_device(inputs, device)).float().cpu().numpy())
    return np.concatenate(rows)


def cached_features(
    backbone: Any,
    key_parts: list[str],
    dataset: Dataset,
    transform: Any,
    batch_size: int,
    cache: Path,
    label: str = "features",
    *,
    precision: str = "fp32",
    workers: int = 0,
) -> np.ndarray:
    """`backbone`'s features of `dataset`, read from `cache` when computed before, else computed (with a
    progress bar named `label`, at `precision`, fed by `workers`) and stored whole or not at all.

    `key_parts` must hold whatever else changes the features' bits (`strategies.features_key`: the model,
    its weights, and the precision, device type, GPU model and CUDA version where they are not fp32 on a CPU)."""
    key = hashlib.sha256("\n".join([*key_parts, repr(transform), dataset.fingerprint()]).encode()).hexdigest()[:32]
    path = cache / f"{key}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    features = compute_features(backbone, dataset, transform, batch_size, label, precision=precision, workers=workers)
    cache.mkdir(parents=True, exist_ok=True)
    # a name of its own: another process (a `zoo rank` beside a `zoo finetune`) may write the same features
    with tempfile.NamedTemporaryFile(dir=cache, prefix=f"{key}.", suffix=".tmp", delete=False) as partial:
        np.save(partial, features)
    Path(partial.name).replace(path)
    return features
