"""The user's own registry, ``$ZOO_HOME/registry.toml``: where zoo writes models it learns of.

`zoo import`, `zoo cache import` (and later `zoo pretrain` and `zoo convert`) add entries here; users
may edit it too — tomlkit keeps their comments and layout. It is read after the plugins and before
``ZOO_REGISTRY``, so its entries override plugin entries of the same name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from zoo_core.specs import ModelSpec

__all__ = ["add_to_user_registry", "user_registry"]


def user_registry(home: Path) -> Path:
    return home / "registry.toml"


def add_to_user_registry(home: Path, spec: ModelSpec) -> Path:
    """Add (or replace) the spec's entry in the user's registry; written whole or not at all."""
    import tomlkit

    path = user_registry(home)
    document = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    models = document.setdefault("model", tomlkit.aot())
    kept = [entry for entry in models if entry.get("name") != spec.name]
    models.clear()
    models.extend([*kept, spec.to_entry()])
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(tomlkit.dumps(document))
    Path(temporary).replace(path)
    return path
