"""Gathering the catalogue's sources, merging them, and caching the merged index.

Sources, each overriding the ones before it (with a warning that names both origins):
1. the built-in ``registry.toml`` shipped inside `zoo_core`;
2. what plugins return from the `register_models` hook: specs, or the paths of registry files they ship;
3. the user's registry, ``$ZOO_HOME/registry.toml``, where zoo records imported models (if it exists);
4. the files listed in ``ZOO_REGISTRY``;
5. files passed explicitly (``zoo --registry FILE``).
A malformed file or entry is reported as a `RegistryWarning` and skipped; the rest still loads.

The merged index is cached as SQLite under ``$ZOO_HOME/catalogue/``, keyed by zoo's version and code,
each file's path, size and modification time, and the content of plugin-built specs — so editing any
source rebuilds it, and an unchanged catalogue of any size opens in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from zoo_core._version import __version__
from zoo_core.catalogue import Catalogue, write_index
from zoo_core.errors import RegistryError, RegistryWarning
from zoo_core.plugins import each_result
from zoo_core.registry import check_spec, parse_spec, read_registry_file
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec
from zoo_core.user_registry import user_registry

__all__ = ["builtin_registry", "default_catalogue", "load_catalogue", "reset_catalogue"]

_CACHES_KEPT = 8
# The index is derived by this code too: a changed module (a new zoo, or a developer's edit) rebuilds it.
_INDEX_CODE = ("catalogue.py", "registry.py", "specs.py", "validate.py")

# a registry file, or (plugin origin, what its register_models returned in code: entries or specs)
Source = Path | tuple[str, list[ModelSpec | dict[str, Any]]]


def builtin_registry() -> Path:
    """The ``registry.toml`` shipped inside the package."""
    return Path(str(resources.files("zoo_core").joinpath("registry.toml")))


def _plugin_sources() -> list[Source]:
    sources: list[Source] = []
    for plugin, returned in each_result("register_models"):  # each_result refuses an answer that is no list
        offered: list[ModelSpec | dict[str, Any]] = []
        for item in returned:
            if isinstance(item, Path):
                sources.append(item)
            elif isinstance(item, ModelSpec):
                offered.append(item)
            elif isinstance(item, Mapping) and (entry := _as_registry_data(item)) is not None:
                offered.append(entry)
            else:
                what = "a mapping that is not JSON data" if isinstance(item, Mapping) else f"a {type(item).__name__}"
                message = (
                    f"plugin '{plugin}': register_models returned {what}, not a registry entry (a mapping of "
                    "str keys to TOML values), a Path or a ModelSpec; skipped it"
                )
                warnings.warn(message, RegistryWarning, stacklevel=2)
        if offered:
            sources.append((f"plugin '{plugin}'", offered))
    return sources


def _as_registry_data(entry: Mapping[Any, Any]) -> dict[str, Any] | None:
    """A plugin's entry as the data a registry file gives (JSON types, str keys), or None when it cannot be:
    then the entry is validated exactly like a file's, and fingerprinted without surprises."""
    try:
        data = json.loads(json.dumps(entry, default=repr))
    except (TypeError, ValueError, RecursionError):  # keys that are no str/number, a circular entry
        return None
    return data if isinstance(data, dict) else None


def _fingerprint(sources: Sequence[Source]) -> str:
    digest = hashlib.sha256(f"zoo {__version__}\n".encode())
    for module in _INDEX_CODE:
        digest.update(f"{module} {Path(__file__).with_name(module).stat().st_mtime_ns}\n".encode())
    for source in sources:
        if isinstance(source, Path):
            try:
                stat = source.stat()
                digest.update(f"file {source.resolve()} {stat.st_size} {stat.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"missing {source}\n".encode())
        else:
            origin, offered = source
            items = [item.to_dict() if isinstance(item, ModelSpec) else item for item in offered]
            digest.update(json.dumps([origin, items], default=repr, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _merge(sources: Sequence[Source]) -> tuple[list[ModelSpec], list[str]]:
    merged: dict[str, ModelSpec] = {}
    notes: list[str] = []
    for source in sources:
        if isinstance(source, Path):
            specs, errors = read_registry_file(source)
            notes.extend(str(error) for error in errors)
        else:
            origin, offered = source
            specs = []
            for item in offered:  # each entry on its own, checked as a registry file's entries are
                try:
                    if isinstance(item, ModelSpec):
                        specs.append(check_spec(item, item.origin or origin))
                    else:
                        specs.append(parse_spec(item, origin))
                except RegistryError as error:
                    notes.append(str(error))
        for spec in specs:
            earlier = merged.pop(spec.name, None)  # pop: the overriding entry also takes the later position
            if earlier is not None and earlier.origin != spec.origin:
                notes.append(f"model '{spec.name}' from {spec.origin} overrides the one from {earlier.origin}")
            elif earlier is not None:
                notes.append(f"{spec.origin}: model '{spec.name}' is defined twice; the last one is used")
            merged[spec.name] = spec
    return list(merged.values()), notes


def _open_cached(path: Path) -> Catalogue | None:
    """The index at `path`, or None when it is absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        catalogue = Catalogue(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True))
        catalogue.notes  # noqa: B018  (reads a table: a corrupt file fails here, not in a later query)
    except sqlite3.Error:
        return None
    return catalogue


def _build(folder: Path, path: Path, sources: Sequence[Source]) -> Catalogue:
    """Merge the sources into a new index at `path`, written whole or not at all; in memory if it can't be."""
    specs, notes = _merge(sources)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(handle)
        try:
            with sqlite3.connect(temporary) as connection:
                write_index(connection, specs, notes)
            connection.close()
            Path(temporary).replace(path)
        finally:
            Path(temporary).unlink(missing_ok=True)
        for stale in sorted(folder.glob("*.sqlite"), key=lambda each: each.stat().st_mtime)[:-_CACHES_KEPT]:
            stale.unlink(missing_ok=True)
    except (OSError, sqlite3.Error):  # a read-only or full ZOO_HOME costs speed, not correctness
        return Catalogue.from_specs(specs, notes)
    return _open_cached(path) or Catalogue.from_specs(specs, notes)


def load_catalogue(registry_files: Sequence[Path] = (), settings: Settings | None = None) -> Catalogue:
    """Read every catalogue source, in override order, into a `Catalogue` (from the cache when unchanged)."""
    settings = settings or Settings.from_env()
    sources: list[Source] = [
        builtin_registry(),
        *_plugin_sources(),
        *([user_registry(settings.home)] if user_registry(settings.home).exists() else []),
        *settings.registry_files,
        *registry_files,
    ]
    folder = settings.home / "catalogue"
    path = folder / f"{_fingerprint(sources)}.sqlite"
    catalogue = _open_cached(path) or _build(folder, path, sources)
    for note in catalogue.notes:
        warnings.warn(note, RegistryWarning, stacklevel=2)
    return catalogue


_default: Catalogue | None = None
_command_files: tuple[Path, ...] = ()  # `zoo --registry FILE` for the command running now


def use_registry_files(files: Sequence[Path]) -> None:
    """Make `files` part of the default catalogue (the CLI's ``--registry``), so every part of a command —
    download, check, finetune, export, a manifest's model — reads one catalogue built from the same options."""
    global _command_files
    if tuple(files) != _command_files:
        _command_files = tuple(files)
        reset_catalogue()


def default_catalogue() -> Catalogue:
    """The catalogue from the environment's sources (and the command's ``--registry`` files), loaded once."""
    global _default
    if _default is None:
        _default = load_catalogue(_command_files)
    return _default


def reset_catalogue() -> None:
    """Forget the default catalogue, so the next use reloads every source."""
    global _default
    _default = None
