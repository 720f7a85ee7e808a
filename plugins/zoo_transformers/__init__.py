"""zoo's transformers plugin: contextual text encoders of the BERT family.

Its models are entries of the built-in ``registry.toml`` with ``plugin = "transformers"``.
"""

from __future__ import annotations

from pathlib import Path

from zoo_core import CheckReport, Finding, ModelSpec, Requirement, hookimpl

INSTALL = "pip install 'zoo-tl[text]'"


@hookimpl
def plugin_requirements() -> list[Requirement]:
    return [Requirement(module, INSTALL) for module in ("torch", "transformers", "safetensors")]


@hookimpl
def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object | None:
    if spec.plugin != "transformers":
        return None
    from zoo_transformers.backbone import TransformerBackbone

    return TransformerBackbone(spec, weights_dir)


@hookimpl
def check_input(spec: ModelSpec, data: object, report: CheckReport) -> list[Finding] | None:
    """Truncation and [UNK] rate with the model's own tokenizer, after zoo's text check, for this plugin's models."""
    if spec.plugin != "transformers":
        return None
    from zoo_transformers.check import tokenizer_findings

    return tokenizer_findings(spec, data)
