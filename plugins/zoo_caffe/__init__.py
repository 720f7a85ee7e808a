"""zoo's Caffe Model Zoo plugin: prototxt + caffemodel → a PyTorch backbone, with no Caffe installation.

Reads Caffe's files with protobuf (`reader`), builds the net as torch modules with Caffe's semantics
(`layers`, `network`), and converts weights to safetensors with a spec (`convert`, ``zoo convert caffe``).
"""

from __future__ import annotations

from zoo_core import Requirement, hookimpl

INSTALL = "pip install 'zoo-tl[caffe]'"


@hookimpl
def plugin_requirements() -> list[Requirement]:
    return [Requirement(module, INSTALL) for module in ("torch", "google.protobuf", "safetensors")]
