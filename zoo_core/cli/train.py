"""`zoo finetune` and `zoo pretrain`: adapting a pretrained model, and developing a source model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoo_core.cli import State

__all__ = ["COMMANDS"]


def _report(metrics: dict[str, Any], out: Path) -> None:
    summary = metrics.get("transfer") or metrics["source"]
    click.echo(f"{metrics['model']}: start {summary['start']:.1%}, slope {summary['slope']:+.1%}/epoch, "
               f"final {summary['final']:.1%} (best {summary['best']:.1%})")  # fmt: skip
    if "scratch" in metrics:
        scratch = metrics["scratch"]
        click.echo(f"scratch baseline: start {scratch['start']:.1%}, final {scratch['final']:.1%} -> transfer is "
                   f"{metrics['transfer_minus_scratch'] * 100:+.1f} points")  # fmt: skip
    click.echo(f"run folder: {out}")


@click.command("finetune")
@click.argument("name", required=False)
@click.argument("data", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder to write.")
@click.option("--strategy", type=click.Choice(["features", "finetune", "full"]), default="features", show_default=True)
@click.option("--head", type=click.Choice(["linear", "mlp", "logreg"]), default="linear", show_default=True)
@click.option("--unfreeze", default=1, show_default=True, help="finetune: backbone stages trained under the head.")
@click.option("--drop-last", default=0, show_default=True, help="Reuse all backbone stages but the last N.")
@click.option("--epochs", default=10, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--val-split", default=0.2, show_default=True, help="Stratified share held out for validation.")
@click.option("--val", type=click.Path(exists=True, path_type=Path), help="A separate validation set instead.")
@click.option("--seed", default=0, show_default=True)
@click.option("--baseline", type=click.Choice(["scratch"]), help="Also train the architecture from random weights.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--from-manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reproduce the run a manifest.json describes.")  # fmt: skip
@click.pass_obj
def finetune_command(state: State, /, name: str | None, data: Path | None, out: Path, from_manifest: Path | None,
                     resume: bool, **options: Any) -> None:  # fmt: skip
    """Adapt a pretrained model to a labelled dataset (an image folder, or a CSV/JSONL with text and label)."""
    from zoo_core.training.run import FinetuneOptions, finetune, finetune_from_manifest

    if from_manifest is not None:
        metrics = finetune_from_manifest(from_manifest, out)
    elif name is None or data is None:
        raise click.UsageError("give NAME and DATA, or --from-manifest RUN_DIR/manifest.json")
    else:
        options["val"] = str(options["val"]) if options["val"] else None
        metrics = finetune(state.catalogue().get(name), data, out, FinetuneOptions(**options), resume=resume)
    _report(metrics, out)


@click.command("pretrain")
@click.argument("arch")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="The catalogue name the source model gets.")
@click.option("--size", default=32, show_default=True, help="Input height and width.")
@click.option("--channels", default=3, show_default=True, help="1 for grayscale data.")
@click.option("--epochs", default=15, show_default=True)
@click.option("--lr", default=3e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
def pretrain_command(arch: str, data: Path, out: Path, name: str, size: int, channels: int, epochs: int, lr: float,
                     seed: int) -> None:  # fmt: skip
    """Train a timm ARCH from scratch on abundant source DATA and register it, for `zoo finetune NAME`."""
    from zoo_core.training.pretrain import pretrain
    from zoo_core.training.run import FinetuneOptions

    metrics = pretrain(arch, data, out, name, size=size, channels=channels,
                       options=FinetuneOptions(epochs=epochs, lr=lr, seed=seed))  # fmt: skip
    _report(metrics, out)


COMMANDS = (finetune_command, pretrain_command)
