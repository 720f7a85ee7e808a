"""zoo's transformers plugin: contextual text encoders of the BERT family.

Its models are entries of the built-in ``registry.toml`` with ``plugin = "transformers"``.
"""

from __future__ import annotations

from zoo_core import Requirement, hookimpl

INSTALL = "pip install 'zoo-tl[text]'"


@hookimpl
def plugin_requirements() -> list[Requirement]:
    return [Requirement(module, INSTALL) for module in ("torch", "transformers", "safetensors")]
