"""`zoo_core.rank`: which of several backbones will do best on the user's data, without fine-tuning them.

Each candidate's frozen features of the data are scored by a transferability score (`zoo_core.transferability`:
LogME, H-score, a cross-validated linear probe). The data is split exactly as `zoo finetune` splits it with the
same options, and only the train and validation splits are read: the test split stays unseen, so the accuracy a
later fine-tuning reports on it is still an honest one. The features go through the same cache, under the same
key, as `zoo finetune --strategy features`, which then reuses them. Beside each score: the model's source/target
similarity (`zoo_core.domain`), its parameters and its published ImageNet top-1. The features are computed on
the device `options.device` names (``auto``: a GPU when torch sees one), keyed as a run keys them (device
type, and for a GPU its model and CUDA version).
"""

from __future__ import annotations

import dataclasses
import random
import shlex
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.catalogue import Catalogue, Filters
from zoo_core.catalogue_sources import default_catalogue
from zoo_core.checks import Finding
from zoo_core.errors import DataError, RunOptionError
from zoo_core.specs import ModelSpec
from zoo_core.training.data import Dataset
from zoo_core.training.options import FinetuneOptions

__all__ = ["RankedModel", "Ranking", "choose_candidates", "rank"]

FAMILY_LIMIT = 10  # a family larger than this needs --top: every candidate is downloaded and run


@dataclass(frozen=True)
class RankedModel:
    """One candidate's outcome: its scores (higher is better), the one ranked by, and what it cost."""

    name: str
    modality: str  # what the model takes: image, text or embedding (word vectors, used frozen only)
    scores: dict[str, float]  # the scores computed (of `zoo_core.transferability.SCORES`), by name
    score: float  # the score the ranking is by
    seconds: float  # features (or reading them from the cache) and scores
    params: int | None
    top1: float | None  # published ImageNet-1k top-1, percent
    domain: Finding | None  # how far the data is from the model's source domain


@dataclass(frozen=True)
class Ranking:
    """Candidates best first by `score`, the ones that could not be ranked, and the recommendation."""

    data: str
    score: str
    models: tuple[RankedModel, ...]
    failed: dict[str, str]  # candidate -> why it could not be ranked
    items: int  # train and validation items scored, per candidate
    classes: int
    seconds: float
    recommendation: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with each model's rank (1 = best)."""
        data = dataclasses.asdict(self)
        for position, model in enumerate(data["models"], 1):
            model["rank"] = position
        return data


def data_kind(data: Path) -> str:
    """A folder holds images (one subfolder per class); a file holds labelled texts; a single image is no
    labelled dataset."""
    from zoo_core.images import IMAGE_SUFFIXES

    if data.is_dir():
        return "image"
    if data.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(f"{data}: one image is no labelled dataset; give a folder with one subfolder per class")
    return "text"


def choose_candidates(
    catalogue: Catalogue,
    kind: str,
    models: Sequence[str] = (),
    family: str | None = None,
    top: int | None = None,
) -> list[ModelSpec]:
    """The models to rank for data of `kind`: those named; else the `top` best by ImageNet top-1 (of `family`,
    if given); else `family` whole (at most `FAMILY_LIMIT`); else every model whose weights are on disk."""
    from zoo_core.training.data import dataset_kind

    if models and (family or top):
        raise RunOptionError("--models names the candidates: leave out --family and --top, or --models")
    if models:
        chosen = list({spec.name: spec for spec in map(catalogue.get, models)}.values())  # an alias given twice
        for spec in chosen:
            if dataset_kind(spec.modality) != kind:
                raise RunOptionError(
                    f"--models: {spec.name} takes {dataset_kind(spec.modality)} data, and this data is {kind}; "
                    f"name {kind} models"
                )
        return chosen
    from zoo_core.plugins import not_loaded

    unloaded = not_loaded(catalogue)  # as `zoo list` and `zoo search`, leave out what cannot load
    hidden = Filters(family=family, hidden_plugins=unloaded)
    order = "top1" if top is not None else None  # best ImageNet top-1 first, models without it last
    fitting = [spec for spec in catalogue.select(hidden, sort=order) if dataset_kind(spec.modality) == kind]
    if top is not None:
        measured = [spec for spec in fitting if spec.figures.top1 is not None]
        if not measured:
            where = f"{kind} model of family {family!r}" if family else f"{kind} model"
            raise RunOptionError(f"--top {top}: no {where} has an ImageNet top-1 figure; name models with --models")
        return measured[:top]
    if family:
        if not fitting:
            raise RunOptionError(f"--family {family}: no {kind} model of that family; see `zoo list --family {family}`")
        if len(fitting) > FAMILY_LIMIT:
            raise RunOptionError(
                f"--family {family}: {len(fitting)} models, each downloaded and run; add --top K to rank the K best "
                "by ImageNet top-1, or name them with --models"
            )
        return fitting
    from zoo_core.download import weights_on_disk

    local = [spec for spec in fitting if weights_on_disk(spec)]
    if not local:
        top_k = ", or add --top K to rank the K best by ImageNet top-1 (downloaded)" if kind == "image" else ""
        raise RunOptionError(f"no {kind} model has its weights on disk to rank: name candidates with --models{top_k}")
    return local


def _within_budget(train: Dataset, val: Dataset, budget: int, seed: int) -> tuple[Dataset, Dataset]:
    """Train and validation sets holding at most `budget` items of each class together, drawn with `seed`;
    each split keeps its share of a class (training at least one item)."""
    generator = random.Random(seed)
    kept: tuple[list[int], list[int]] = ([], [])
    for label in range(len(train.classes)):
        positions = [[i for i, of in enumerate(part.labels) if of == label] for part in (train, val)]
        counts = [len(each) for each in positions]
        if sum(counts) > budget:
            in_train = min(counts[0], max(1, round(budget * counts[0] / sum(counts))))
            counts = [in_train, min(counts[1], budget - in_train)]
        for part, count in enumerate(counts):
            kept[part].extend(generator.sample(positions[part], count))
    return train.subset(sorted(kept[0])), val.subset(sorted(kept[1]))


def rank(
    data: str | Path,
    models: Sequence[str | ModelSpec],
    score: str = "logme",
    budget: int | None = None,
    options: FinetuneOptions = FinetuneOptions(),
    catalogue: Catalogue | None = None,
    also: Sequence[str] = (),
) -> Ranking:
    """Score every candidate in `models` on `data` and rank them by `score`, best first.

    `options` are `zoo finetune`'s: its splits (`val`, `test`, shares, `seed`), `batch_size`, `drop_last` and
    `threads` decide which items are scored and key the features as a features run would. `budget` keeps at
    most that many items per class (train and validation together). A candidate that cannot be ranked (its
    weights cannot be fetched, its plugin fails) is reported in `failed`, with a warning; none ranked is an error.
    Only `score` is computed, and the scores `also` names beside it (the linear probe costs seconds a model).
    """
    from zoo_core.training.data import dataset_kind
    from zoo_core.training.device import resolve_device
    from zoo_core.training.run import run_splits
    from zoo_core.transferability import SCORES

    for name in (score, *also):
        if name not in SCORES:
            raise RunOptionError(f"--score {name}: not one of {', '.join(SCORES)}")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 2):
        raise RunOptionError(f"--budget {budget}: must be a whole number of items per class, at least 2")
    if not models:
        raise RunOptionError("no candidates to rank: name at least one model")
    found = catalogue or default_catalogue()
    named = [model if isinstance(model, ModelSpec) else found.get(model) for model in models]
    specs = list({spec.name: spec for spec in named}.values())  # a model named twice (or by an alias) once
    data = Path(data)
    kind = data_kind(data)
    for spec in specs:
        if dataset_kind(spec.modality) != kind:
            raise RunOptionError(f"{spec.name} takes {dataset_kind(spec.modality)} data, and {data} is {kind} data")
    started = time.perf_counter()
    data = data.resolve()
    options = dataclasses.replace(
        options,
        val=str(Path(options.val).resolve()) if options.val else None,
        test=str(Path(options.test).resolve()) if options.test else None,
    )
    splits = run_splits(data, kind, options, options.seed)  # the data's faults stop here, before any candidate
    train, val = splits.train, splits.val
    if budget is not None:
        train, val = _within_budget(train, val, budget, options.seed)
    computed = tuple(dict.fromkeys((score, *also)))
    device = resolve_device(options.device, options.precision)
    ranked, failed = [], {}
    for spec in specs:
        try:
            ranked.append(_rank_one(spec, data, train, val, computed, options, device))
        except Exception as error:  # this candidate's alone (too small an input, a failing plugin): rank the rest
            failed[spec.name] = str(error).strip().split("\n")[0] or type(error).__name__
            warnings.warn(f"{spec.name} not ranked: {failed[spec.name]}", stacklevel=2)
    if not ranked:
        raise RunOptionError(f"none of the {len(specs)} candidate(s) could be ranked on {data} (each said why above)")
    ranked.sort(key=lambda model: -model.scores[score])
    seconds = time.perf_counter() - started
    items = len(train.items) + len(val.items)
    advice = _advice(ranked, data, options, budget)
    return Ranking(str(data), score, tuple(ranked), failed, items, len(train.classes), seconds, advice)


def _rank_one(
    spec: ModelSpec,
    data: Path,
    train: Dataset,
    val: Dataset,
    computed: tuple[str, ...],
    options: FinetuneOptions,
    device: Any,
) -> RankedModel:
    """One candidate scored on the train and validation sets by each score `computed` names (the first ranks);
    its features computed on `device`, the torch device `options.device` resolved to."""
    import numpy as np

    from zoo_core.domain import source_similarity
    from zoo_core.download import fetch
    from zoo_core.loading import load
    from zoo_core.training.device import on_device
    from zoo_core.training.features import cached_features, features_cache
    from zoo_core.training.model import run_backbone
    from zoo_core.training.run import pinned_threads, usable_transform, weights_id
    from zoo_core.training.strategies import features_key
    from zoo_core.transferability import SCORES

    started = time.perf_counter()
    transform = usable_transform(spec, data)  # a model the data does not suit (images too small) fails alone
    with pinned_threads(options.threads):
        key = features_key(spec, weights_id(fetch(spec)), options, device)
        backbone = load(spec)
        domain = source_similarity(spec, backbone, train.items, transform)
        run_backbone(backbone, options.drop_last)
        with on_device(backbone, device):
            parts = [
                cached_features(
                    backbone,
                    key,
                    part,
                    transform,
                    options.batch_size,
                    features_cache(),
                    f"{spec.name} {name}",
                    precision=options.precision,
                    workers=options.workers,
                )
                for name, part in (("train", train), ("validation", val))
            ]
    features = np.concatenate(parts)
    labels = np.asarray([train.classes[label] for label in train.labels + val.labels])  # named in messages
    scores = {name: float(SCORES[name](features, labels)) for name in computed}
    seconds = time.perf_counter() - started
    figures = (seconds, spec.params, spec.figures.top1, domain)
    return RankedModel(spec.name, spec.modality, scores, scores[computed[0]], *figures)


def _advice(ranked: list[RankedModel], data: Path, options: FinetuneOptions, budget: int | None) -> str:
    """The recommendation: the best candidate and the `zoo finetune` to run next, with the options that make its
    splits and features the ones scored here; the domain finding may advise training more than a head."""
    best = ranked[0]
    far = best.domain is not None and best.domain.level == "warn"
    trainable = best.modality != "embedding"  # word vectors are only used frozen
    strategy = "finetune" if far and trainable else "features"
    defaults = FinetuneOptions()
    given = [
        f"--{key.replace('_', '-')} {shlex.quote(str(getattr(options, key)))}"
        for key in ("val", "test", "val_split", "test_split", "seed", "drop_last", "threads")
        if getattr(options, key) != getattr(defaults, key)
    ]
    command = " ".join(["zoo finetune", best.name, shlex.quote(str(data)), *given, "--strategy", strategy])
    if budget is not None:
        why = "a --budget scores subsets, not its splits: it computes its features afresh"
    elif far and trainable:
        why = "its data is far from its source: train more than a head; a features run would reuse these features"
    else:
        why = "it reuses the features computed here"
    return f"{best.name}; next: {command} --out RUN ({why})"
