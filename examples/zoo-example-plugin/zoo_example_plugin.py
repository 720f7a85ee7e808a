"""An example zoo plugin: adds two models to the catalogue and a `zoo example-hello` command.

Install it next to zoo (``pip install ./examples/zoo-example-plugin``) and ``zoo list --plugin example``
shows its models. Copy this file to start your own plugin; docs/plugins.md explains every hook.
"""

from __future__ import annotations

import click

from zoo_core import ModelSpec, Requirement, hookimpl, parse_spec

_DIGITS_INPUT = {"channels": 1, "height": 8, "width": 8, "mean": [0.5], "std": [0.5], "crop_pct": 1.0}
_MODELS = [
    {
        "name": "digits_cnn.small",
        "aliases": ["digits_cnn"],
        "arch": "digits_cnn_small",
        "description": "A small CNN for 8x8 handwritten digits",
        "params": 12_000,
    },
    {
        "name": "digits_cnn.wide",
        "arch": "digits_cnn_wide",
        "description": "A wider CNN for 8x8 handwritten digits",
        "params": 48_000,
    },
]


@hookimpl
def plugin_requirements() -> list[Requirement]:
    # Modules imported lazily by build_backbone; none yet, so the plugin is always usable.
    return []


@hookimpl
def register_models() -> list[ModelSpec]:
    common = {
        "plugin": "example",
        "family": "digits_cnn",
        "task": "image-classification",
        "modality": "image",
        "license": "mit",
        "tags": ["digits", "example"],
        "source": {"hub": "zoo-examples/digits-cnn", "files": ["model.safetensors"]},
        "input": _DIGITS_INPUT,
        "output": {"num_classes": 10},
    }
    return [parse_spec({**common, **model}, "plugin 'example'") for model in _MODELS]


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(name="example-hello")
    def example_hello() -> None:
        """Say hello from the example plugin."""
        click.echo("hello from zoo-example-plugin")
