"""``zoo convert caffe PROTOTXT CAFFEMODEL --out DIR [--name NAME] [--mean FILE]``."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["convert_group"]


@click.group("convert")
def convert_group() -> None:
    """Convert weights from another framework into a zoo model (safetensors + spec)."""


@convert_group.command("caffe")
@click.argument("prototxt", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("caffemodel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write.")
@click.option("--name", help="Catalogue name for the model (default: the net's name).")
@click.option("--mean", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The model's mean.binaryproto (default: the ImageNet BGR mean 104, 117, 123).")  # fmt: skip
def convert_caffe_command(prototxt: Path, caffemodel: Path, out: Path, name: str | None, mean: Path | None) -> None:
    """A Caffe deploy.prototxt and .caffemodel as a zoo model, registered in your registry."""
    from zoo_caffe.convert import convert_caffe
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    spec = convert_caffe(prototxt, caffemodel, out, name, mean)
    add_to_user_registry(Settings.from_env().home, spec)
    click.echo(f"{spec.name}: {spec.params:,} parameters, {spec.output.num_classes} classes → {out}; "
               f"registered (zoo info {spec.name})")  # fmt: skip
