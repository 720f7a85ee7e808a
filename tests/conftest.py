"""Every test runs with zoo isolated in a temporary home (the `zoo_env` fixture of zoo's pytest plugin)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated(zoo_env: Path) -> Path:
    return zoo_env


@pytest.fixture
def write_registry(tmp_path: Path) -> Callable[..., Path]:
    """Write a registry file from TOML text (dedented) and return its path."""

    def write(text: str, name: str = "registry.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


IMAGE_ENTRY = """
[[model]]
name = "{name}"
plugin = "timm"
arch = "{arch}"
family = "resnet"
task = "image-classification"
modality = "image"
license = "apache-2.0"
source = {{ hub = "timm/{name}", files = ["model.safetensors"] }}
input = {{ channels = 3, height = 224, width = 224 }}
"""


def image_entry(name: str, arch: str = "resnet18") -> str:
    """A minimal valid image entry in registry TOML."""
    return IMAGE_ENTRY.format(name=name, arch=arch)
