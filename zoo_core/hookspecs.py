"""The hooks a zoo plugin can implement.

A plugin is a module (or object) with functions marked `@zoo_core.hookimpl` whose names are the hooks
below; it implements only the hooks it needs. zoo finds plugins through the ``zoo`` entry-point group.
Every hook returns a value instead of taking callbacks, so a hook is easy to type and to test.

zoo calls a hook plugin by plugin, in pluggy's call order: implementations marked ``tryfirst=True``, then
the others, the most recently registered first, then those marked ``trylast=True`` (``ZOO_TRACE_PLUGINS=1``
prints that order). A plugin that raises (or exits), or answers what the hook cannot use, is named,
recorded (`zoo plugins` shows it as an error until that hook gives a usable answer that is not ``None``) and
skipped for other plugins' models; for its own models (``spec.plugin`` is its name) the error is reported,
naming it. A function marked `hookimpl` whose name is none of these hooks shows the plugin as an error too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from zoo_core.checks import CheckReport, Finding
    from zoo_core.specs import ModelSpec

__all__ = ["Requirement", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@dataclass(frozen=True, slots=True)
class Requirement:
    """A module a plugin needs, and the command that installs it."""

    module: str  # top-level import name, e.g. "timm"
    install: str  # e.g. "pip install 'zoo-tl[vision]'"


@hookspec
def plugin_requirements() -> list[Requirement]:
    """Name the modules the plugin imports lazily, so zoo can tell whether it is usable.

    Called when zoo lists plugins (`zoo plugins`) and before it asks a plugin to build a model.
    zoo looks each module up with `importlib.util.find_spec`, without importing it. Return one
    `Requirement(module, install)` per top-level module; `install` is the command that provides it.
    A plugin with a missing module is shown as *unavailable* with that command, and its models stay in
    the catalogue. Each plugin answers for itself; the lists are not merged.
    """


@hookspec
def register_models() -> list[ModelSpec | Path | Mapping[str, Any]]:
    """Add models to the catalogue.

    Called once each time the catalogue is loaded, after the built-in ``registry.toml`` and before the
    user's registry files (so a user's entry overrides a plugin's, with a warning). Return a list whose
    items are registry entries (mappings of the same shape as a registry file's ``[[model]]`` tables),
    `Path`s of registry files the plugin ships (TOML, or JSON of the same shape), or `ModelSpec`s built in
    code. zoo validates each entry on its own, as it does a registry file's: a bad entry is skipped with a
    `RegistryWarning` naming the plugin, the entry and the field, and the rest are kept. The lists of all
    plugins are joined. zoo validates and caches files, so a large catalogue (timm's ~1,800 tags) should be
    a file. Keep this fast and import nothing heavy: it runs on every `zoo search`.
    """


@hookspec
def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object | None:
    """Build the network a spec describes.

    Called through `zoo_core.plugins.build_backbone` whenever zoo needs the network for a model, with
    a spec whose ``plugin`` field names a plugin whose requirements are installed, and the local folder
    holding its downloaded files (``None`` for random initialisation). Return a `zoo_core.Backbone`
    subclass instance for a network (anything else is your failure; a model that is no network, modality
    ``"embedding"`` like a word-vector table, returns the object users work with), or ``None`` when the
    spec is not yours (check ``spec.plugin``). Plugins are asked in call order and the first non-``None``
    result wins.
    """


@hookspec
def check_input(spec: ModelSpec, data: object, report: CheckReport) -> list[Finding] | None:
    """Add findings to zoo's check of a user's data against a model.

    zoo checks images, texts and word-vector datasets itself (readability, sizes, colour modes, classes,
    duplicates, casing, script…); then every plugin is called and the findings it returns are appended
    after zoo's, in call order, to one report. ``data`` is a path (file or folder) or an in-memory batch;
    ``report`` is zoo's own report so far (its findings, and for images the preprocessing ``transform``).
    Return the findings you add (a model-specific test: a vocabulary, a tokenizer, the pictures your
    network was trained on), or ``None`` when you have nothing to add (check ``spec.plugin`` or
    ``spec.modality``).
    """


@hookspec
def convert_weights(format: str, source: Path, destination: Path) -> ModelSpec | None:
    """Convert weights from a foreign format (e.g. ``"caffe"``) into safetensors.

    Called through `zoo_core.plugins.convert_weights` when a user converts foreign weights.
    ``source`` is the file or folder to read; write the converted
    files into the existing folder ``destination`` and return a spec for them, or ``None`` when the
    format is not yours. The first non-``None`` result wins.
    """


@hookspec
def onnx_exporter(spec: ModelSpec) -> tuple[str, str] | None:
    """Choose torch.onnx's exporter for your models: ``("torchscript" | "dynamo", why)``.

    Called by `zoo export` (``--exporter auto``, the default) before the model is prepared and traced.
    Return ``None`` for models that are not yours, or to keep zoo's choice for the modality
    (`zoo_core.export.EXPORTERS`); ``why`` is printed with the export's report. The first non-``None``
    result wins.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``zoo`` command line.

    Called once when the CLI starts, with the root `click.Group`; add commands with ``@cli.command()``.
    Import heavy modules inside the command, not at the top of the plugin, to keep ``zoo`` fast.
    """
