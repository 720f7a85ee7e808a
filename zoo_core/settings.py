"""zoo's settings, read from the environment when asked for — never at import time.

| variable                      | meaning                                                              |
|-------------------------------|----------------------------------------------------------------------|
| `ZOO_HOME`                    | zoo's own folder (caches, the user's registry); default below        |
| `ZOO_REGISTRY`                | extra registry files, separated by `os.pathsep`                      |
| `ZOO_DISABLE_PLUGIN_AUTOLOAD` | `1`: load no plugin from entry points (built-ins included)           |
| `ZOO_DISABLE_PLUGINS`         | comma-separated plugin names to block                                |
| `ZOO_TRACE_PLUGINS`           | `1`: print every hook call and its result to stderr                  |

`ZOO_HOME` falls back to `$XDG_CACHE_HOME/zoo`, then the platform's user cache folder (`~/.cache/zoo`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["Settings"]

_TRUE = ("1", "true", "yes", "on")


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


@dataclass(frozen=True, slots=True)
class Settings:
    """A snapshot of the environment switches that zoo reads."""

    home: Path  # zoo's own folder
    registry_files: tuple[Path, ...]  # from ZOO_REGISTRY, in order
    disable_autoload: bool  # skip the `zoo` entry-point group
    disabled_plugins: frozenset[str]  # names to block
    trace_plugins: bool  # print hook calls to stderr

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if environ is None else environ
        if env.get("ZOO_HOME"):
            home = Path(env["ZOO_HOME"])
        elif env.get("XDG_CACHE_HOME"):
            home = Path(env["XDG_CACHE_HOME"]) / "zoo"
        else:
            home = Path(platformdirs.user_cache_dir("zoo", appauthor=False))
        registry = env.get("ZOO_REGISTRY", "")
        return cls(
            home=home.expanduser(),
            registry_files=tuple(Path(part).expanduser() for part in registry.split(os.pathsep) if part),
            disable_autoload=_flag(env.get("ZOO_DISABLE_PLUGIN_AUTOLOAD")),
            disabled_plugins=frozenset(
                name.strip() for name in env.get("ZOO_DISABLE_PLUGINS", "").split(",") if name.strip()
            ),
            trace_plugins=_flag(env.get("ZOO_TRACE_PLUGINS")),
        )
