"""An example zoo plugin to copy: two digit classifiers with weights shipped in the wheel, a check, a command.

Install it next to zoo (``pip install ./examples/zoo-example-plugin``); then ``zoo list --plugin example``
shows its models and ``zoo finetune digits_cnn DATA --out RUN`` adapts one. Each hook below is a few lines;
the work lives in small modules imported inside the hooks, so ``zoo search`` never imports torch.
docs/plugins.md explains every hook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoo_core import Finding, ImageInput, ModelSpec, Requirement, hookimpl
from zoo_example_plugin.models import ENTRIES, PLUGIN

INSTALL = "pip install 'zoo-tl[vision]'"


@hookimpl
def plugin_requirements() -> list[Requirement]:
    # what build_backbone and check_input import lazily: without them the plugin is listed as unavailable
    return [Requirement(module, INSTALL) for module in ("torch", "safetensors", "PIL", "numpy")]


@hookimpl
def register_models() -> list[dict[str, Any]]:
    return ENTRIES


@hookimpl
def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object | None:
    if spec.plugin != PLUGIN:
        return None  # another plugin's model
    from zoo_example_plugin.backbone import DigitsCNN

    return DigitsCNN(spec, weights_dir)


@hookimpl
def check_input(spec: ModelSpec, data: object) -> list[Finding] | None:
    """Ink polarity, added after zoo's own image check; a hook takes only the arguments it needs (not `report`)."""
    if spec.plugin != PLUGIN or not isinstance(data, str | Path):  # in-memory batches: zoo's check alone
        return None
    from zoo_example_plugin.ink import ink_finding

    assert isinstance(spec.input, ImageInput)  # every entry of this plugin is an image model
    finding = ink_finding(Path(data), spec.input)
    return None if finding is None else [finding]


@hookimpl
def onnx_exporter(spec: ModelSpec) -> tuple[str, str] | None:
    if spec.plugin != PLUGIN:
        return None
    return "torchscript", "digits_cnn is convolutions, ReLUs and pooling: TorchScript traces it as it is"


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(name="example-hello")
    def example_hello() -> None:
        """Say hello from the example plugin."""
        click.echo("hello from zoo-example-plugin")
