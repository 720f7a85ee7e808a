"""zoo: a plugin-based model zoo for transfer learning.

The Python API mirrors the CLI::

    import zoo_core
    zoo_core.search("resnet", license=["apache-2.0"])   # -> list[ModelSpec], best first
    zoo_core.get("resnet50")                             # -> ModelSpec (names and aliases)
    zoo_core.list_models(family="vgg")                   # -> list[ModelSpec], by name
    zoo_core.rank(Path("photos"), ["efficientnet_lite0", "efficientnet_lite1"])  # -> Ranking, best first

Importing zoo_core is cheap: nothing here imports torch, timm, transformers or onnxruntime.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zoo_core._version import __version__
from zoo_core.catalogue import Catalogue, Filters, parse_count
from zoo_core.catalogue_sources import default_catalogue, load_catalogue
from zoo_core.checks import CheckReport, Finding
from zoo_core.compatibility import check
from zoo_core.download import download, fetch
from zoo_core.errors import (
    ArchiveError,
    ChecksumError,
    DataError,
    DownloadError,
    ExportError,
    ModelNotFoundError,
    NotCachedError,
    PluginError,
    PluginUnavailableError,
    PluginWarning,
    RegistryError,
    RegistryWarning,
    UnsafeValueError,
    UnsafeWeightsError,
    UntrustedServerError,
    WeightsFormatError,
    ZooError,
)
from zoo_core.hookspecs import Requirement, hookimpl
from zoo_core.loading import load
from zoo_core.registry import parse_spec
from zoo_core.specs import EmbeddingInput, Figures, ImageInput, ModelSpec, Output, Source, TextInput
from zoo_core.zeroshot import zero_shot

if TYPE_CHECKING:  # typed for subclassing and calls; at run time `__getattr__` imports them when first used
    from zoo_core.backbone import Backbone as Backbone
    from zoo_core.backbone import LayerGroup as LayerGroup
    from zoo_core.export import export_onnx as export_onnx
    from zoo_core.ranking import rank as rank
    from zoo_core.runtime import Predictor as Predictor

# Backbone, LayerGroup, Predictor, export_onnx and rank are reached lazily (see __getattr__): they import torch/ORT
__all__ = [
    "ArchiveError",
    "Catalogue",
    "CheckReport",
    "ChecksumError",
    "DataError",
    "DownloadError",
    "EmbeddingInput",
    "ExportError",
    "Figures",
    "Filters",
    "Finding",
    "ImageInput",
    "ModelNotFoundError",
    "ModelSpec",
    "NotCachedError",
    "Output",
    "PluginError",
    "PluginUnavailableError",
    "PluginWarning",
    "RegistryError",
    "RegistryWarning",
    "Requirement",
    "Source",
    "TextInput",
    "UnreachableHubError",
    "UnsafeValueError",
    "UnsafeWeightsError",
    "UntrustedServerError",
    "WeightsFormatError",
    "ZooError",
    "__version__",
    "check",
    "download",
    "fetch",
    "get",
    "hookimpl",
    "list_models",
    "load",
    "load_catalogue",
    "parse_spec",
    "rank",
    "search",
    "zero_shot",
]


def _filters(
    family: str | None,
    task: str | None,
    modality: str | None,
    plugin: str | None,
    license: str | Sequence[str] | None,
    max_params: int | str | None,
    min_top1: float | None = None,
    max_gmacs: float | None = None,
) -> Filters:
    licenses = (license,) if isinstance(license, str) else tuple(license or ())
    if isinstance(max_params, str):
        try:
            max_params = parse_count(max_params)
        except ValueError:
            raise ValueError(f"max_params={max_params!r} is not a count; use e.g. 25000000, '25M' or '1.5B'") from None
    if max_params is not None and (not isinstance(max_params, int) or isinstance(max_params, bool)):
        raise TypeError(f"max_params must be a whole number or a count like '25M', not {max_params!r}")
    min_top1 = _figure_bound("min_top1", min_top1, 100.0)
    max_gmacs = _figure_bound("max_gmacs", max_gmacs, math.inf)
    return Filters(family, task, modality, plugin, licenses, max_params, min_top1, max_gmacs)


def _figure_bound(name: str, value: float | None, most: float) -> float | None:
    """`value` of the figure filter `name`, refused as the CLI's `--min-top1`/`--max-gmacs` refuse it, with the
    same wording: a NaN compares false with every figure and a bound out of range is a mistake, and either
    would otherwise answer with a silently empty (or complete) list."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, not {value!r}")
    if value < 0 or value > most:  # in the CLI's order: its range first (NaN passes it), then finiteness
        bounds = f"0<=x<={most:g}" if math.isfinite(most) else "x>=0"
        raise ValueError(f"{name}={value!r} is not in the range {bounds}")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} is not a finite number")
    return float(value)


def search(
    query: str,
    *,
    limit: int | None = 20,
    family: str | None = None,
    task: str | None = None,
    modality: str | None = None,
    plugin: str | None = None,
    license: str | Sequence[str] | None = None,
    max_params: int | str | None = None,
    min_top1: float | None = None,
    max_gmacs: float | None = None,
    sort: str | None = None,
) -> list[ModelSpec]:
    """Models matching `query`, best first: exact name, alias, prefix, words, then close spellings; or, with
    `sort` ("top1", "params", "gmacs", "speed"), the first `limit` matches by that figure (unknown last)."""
    filters = _filters(family, task, modality, plugin, license, max_params, min_top1, max_gmacs)
    return default_catalogue().search(query, filters, limit, sort)


def get(name: str) -> ModelSpec:
    """The model with this name or alias; raises `ModelNotFoundError` naming the closest matches."""
    return default_catalogue().get(name)


def list_models(
    *,
    family: str | None = None,
    task: str | None = None,
    modality: str | None = None,
    plugin: str | None = None,
    license: str | Sequence[str] | None = None,
    max_params: int | str | None = None,
    min_top1: float | None = None,
    max_gmacs: float | None = None,
    sort: str | None = None,
) -> list[ModelSpec]:
    """Every model that passes the filters, sorted by name or by the figure `sort` names (unknown last)."""
    filters = _filters(family, task, modality, plugin, license, max_params, min_top1, max_gmacs)
    return default_catalogue().select(filters, sort)


def __getattr__(name: str) -> object:
    """`Backbone`, `LayerGroup`, `Predictor`, `export_onnx` and `rank` without importing torch or onnxruntime
    until asked for."""
    if name in ("Backbone", "LayerGroup"):
        from zoo_core import backbone

        return getattr(backbone, name)
    if name == "Predictor":
        from zoo_core.runtime import Predictor as Predictor

        return Predictor
    if name == "export_onnx":
        from zoo_core.export import export_onnx as export_onnx

        return export_onnx
    if name == "rank":
        from zoo_core.ranking import rank as rank

        return rank
    raise AttributeError(f"module 'zoo_core' has no attribute {name!r}")
