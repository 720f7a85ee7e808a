"""zoo's Caffe Model Zoo plugin: prototxt + caffemodel → a PyTorch backbone, with no Caffe installation.

Reads Caffe's files with protobuf (`reader`), takes the deploy net of a definition (`deploy_net`), builds it
as torch modules with Caffe's semantics (`layers`, `network`), and converts weights to safetensors with a
spec (`convert`, ``zoo convert caffe``).
"""

from __future__ import annotations

from pathlib import Path

import click

from zoo_core import ModelSpec, Requirement, hookimpl
from zoo_core.errors import WeightsFormatError

INSTALL = "pip install 'zoo-tl[caffe]'"


@hookimpl
def plugin_requirements() -> list[Requirement]:
    return [Requirement(module, INSTALL) for module in ("torch", "google.protobuf", "safetensors")]


@hookimpl
def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object | None:
    """A model `zoo convert caffe` wrote (its folder has model.safetensors and deploy.prototxt), or a Caffe
    Model Zoo entry whose downloaded .caffemodel is converted on first use."""
    if spec.plugin != "caffe":
        return None
    from zoo_caffe.backbone import CaffeBackbone
    from zoo_caffe.convert import converted_folder

    if weights_dir is not None and not (weights_dir / "model.safetensors").exists():
        weights_dir = converted_folder(spec, weights_dir)
    return CaffeBackbone(spec, weights_dir)


@hookimpl
def convert_weights(format: str, source: Path, destination: Path) -> ModelSpec | None:
    """``source``: a folder with one ``*.caffemodel`` and its net definition — ``deploy.prototxt`` when there,
    else the one ``*.prototxt`` that is no solver (a train_val definition is converted to its deploy net)."""
    if format != "caffe":
        return None
    from zoo_caffe.convert import convert_caffe

    definitions = sorted(path for path in source.glob("*.prototxt") if "solver" not in path.name)
    deploy = [path for path in definitions if path.name == "deploy.prototxt"]
    models = sorted(source.glob("*.caffemodel"))
    if len(deploy or definitions) != 1 or len(models) != 1:
        found = [path.name for path in definitions + models]
        raise WeightsFormatError(
            f"{source}: expected one .caffemodel and one net definition (deploy.prototxt, or a single .prototxt "
            f"besides the solver), found {found}"
        )
    return convert_caffe((deploy or definitions)[0], models[0], destination)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from zoo_caffe.command import convert_group

    cli.add_command(convert_group)
