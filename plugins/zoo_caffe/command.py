"""``zoo convert caffe PROTOTXT CAFFEMODEL --out DIR [--name NAME] [--mean FILE] [--input-shape C,H,W]``."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["convert_group"]


@click.group("convert")
def convert_group() -> None:
    """Convert weights from another framework into a zoo model (safetensors + spec)."""


def _shape(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """C,H,W: three positive integers."""
    if value is None:
        return None
    try:
        dims = tuple(int(part) for part in value.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise click.BadParameter(f"{value!r} is not C,H,W; use e.g. 3,227,227")
    return dims


@convert_group.command("caffe")
@click.argument("prototxt", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("caffemodel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write.")
@click.option("--name", help="Catalogue name for the model (default: the net's name).")
@click.option(
    "--mean",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The model's mean.binaryproto (default: a train_val's mean values, else the ImageNet BGR mean 104, 117, 123).",
)
@click.option(
    "--input-shape",
    metavar="C,H,W",
    callback=_shape,
    help="The input's shape, for a train_val definition without transform_param.crop_size (or to override one).",
)
def convert_caffe_command(
    prototxt: Path,
    caffemodel: Path,
    out: Path,
    name: str | None,
    mean: Path | None,
    input_shape: tuple[int, ...] | None,
) -> None:
    """A Caffe net definition (deploy or train_val) and .caffemodel as a zoo model, registered in your registry."""
    from zoo_caffe.convert import convert_caffe
    from zoo_core.settings import Settings
    from zoo_core.user_registry import add_to_user_registry

    spec = convert_caffe(prototxt, caffemodel, out, name, mean, input_shape)
    add_to_user_registry(Settings.from_env().home, spec)
    click.echo(
        f"{spec.name}: {spec.params:,} parameters, {spec.output.num_classes} classes → {out}; "
        f"registered (zoo info {spec.name})"
    )
