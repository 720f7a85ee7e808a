"""zoo's settings, read from the environment when asked for — never at import time.

| variable                      | meaning                                                              |
|-------------------------------|----------------------------------------------------------------------|
| `ZOO_HOME`                    | zoo's own folder (caches, the user's registry); default below        |
| `ZOO_REGISTRY`                | extra registry files, separated by `os.pathsep`                      |
| `ZOO_DISABLE_PLUGIN_AUTOLOAD` | `1`: load no plugin from entry points (built-ins included)           |
| `ZOO_DISABLE_PLUGINS`         | comma-separated plugin names to block                                |
| `ZOO_TRACE_PLUGINS`           | `1`: print every hook call and its result to stderr                  |

`ZOO_HOME` falls back to `$XDG_CACHE_HOME/zoo`, then the platform's user cache folder (`~/.cache/zoo`).

The Hugging Face hub's own variables are read here too, at call time, because `huggingface_hub` reads
them once at import: `HF_HUB_CACHE` (else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`),
`HF_ENDPOINT` and `HF_HUB_OFFLINE`. `HF_TOKEN` is left to `huggingface_hub`, which reads it per call.
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
    hub_cache: Path  # huggingface_hub's cache folder
    endpoint: str  # the hub to download from, unless a spec names a mirror
    offline: bool  # HF_HUB_OFFLINE: use the caches only, make no network call

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
            hub_cache=_hub_cache(env),
            endpoint=(env.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/"),
            offline=_flag(env.get("HF_HUB_OFFLINE")),
        )


def _hub_cache(env: dict[str, str]) -> Path:
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path("~/.cache").expanduser()
    return cache / "huggingface" / "hub"
