"""The hooks a zoo plugin can implement.

A plugin is a module (or object) with functions marked `@zoo_core.hookimpl` whose names are the hooks
below; it implements only the hooks it needs. zoo finds plugins through the ``zoo`` entry-point group.
Every hook returns a value instead of taking callbacks, so a hook is easy to type and to test.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from zoo_core.checks import CheckReport
    from zoo_core.plugins import Requirement
    from zoo_core.specs import ModelSpec

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


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
def register_models() -> list[ModelSpec | Path]:
    """Add models to the catalogue.

    Called once each time the catalogue is loaded, after the built-in ``registry.toml`` and before the
    user's registry files (so a user's entry overrides a plugin's, with a warning). Return a list whose
    items are either a `ModelSpec` built in code (use `zoo_core.parse_spec(entry, origin)` for the
    validation a registry file gets) or the `Path` of a registry file the plugin ships (TOML, or JSON of
    the same shape). zoo validates and caches files, so a large catalogue (timm's ~1,800 tags) should be
    a file. The lists of all plugins are joined. Keep this fast and import nothing heavy: it runs on
    every `zoo search`.
    """


@hookspec(firstresult=True)
def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object | None:
    """Build the network a spec describes.

    Called through `zoo_core.plugins.build_backbone` whenever zoo needs the network for a model, with
    a spec whose ``plugin`` field names a plugin whose requirements are installed, and the local folder
    holding its downloaded files (``None`` for random initialisation). Return a `zoo_core.Backbone`
    subclass instance for a network (a model that is no network, like a word-vector table, returns the
    object users work with), or ``None`` when the spec is not yours (check ``spec.plugin``). The first
    non-``None`` result wins.
    """


@hookspec(firstresult=True)
def check_input(spec: ModelSpec, data: object) -> CheckReport | None:
    """Check a user's data against a spec's input, for the modalities the plugin knows.

    Called through `zoo_core.plugins.check_input` whenever zoo checks a user's data against a model.
    ``data`` is a path (file or folder) or an in-memory batch. Return a `CheckReport` of findings, or
    ``None`` when the spec's modality is not yours. The first non-``None`` result wins.
    """


@hookspec(firstresult=True)
def convert_weights(format: str, source: Path, destination: Path) -> ModelSpec | None:
    """Convert weights from a foreign format (e.g. ``"caffe"``) into safetensors.

    Called through `zoo_core.plugins.convert_weights` when a user converts foreign weights.
    ``source`` is the file or folder to read; write the converted
    files into the existing folder ``destination`` and return a spec for them, or ``None`` when the
    format is not yours. The first non-``None`` result wins.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``zoo`` command line.

    Called once when the CLI starts, with the root `click.Group`; add commands with ``@cli.command()``.
    Import heavy modules inside the command, not at the top of the plugin, to keep ``zoo`` fast.
    """
