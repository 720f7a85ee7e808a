"""`zoo adapt`: a trained run adapted to unlabelled target data (AdaBN, TENT or self-training on
pseudo-labels), written as a new run folder that `zoo evaluate`, `zoo export` and `zoo adapt` take like any other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoo_core.cli import State
from zoo_core.cli.train import THREADS_HELP, hardware_options
from zoo_core.training.adapt_options import METHODS, method_defaults

__all__ = ["COMMANDS"]


def _report(metrics: dict[str, Any], out: Path) -> None:
    """What the adaptation did and, with --labelled, the accuracy it measured before and after."""
    line = f"{metrics['method']} on {metrics['target_items']} target items ({metrics['device']})"
    if "batchnorms" in metrics:
        line += f": {metrics['batchnorms']} BatchNorm layers (those the run trained) re-estimated"
    if "pseudo_labels" in metrics:
        pseudo = metrics["pseudo_labels"]
        line += f": {pseudo['kept']} of {pseudo['of']} pseudo-labelled (confidence {pseudo['threshold']} or more)"
    if metrics.get("curve"):
        line += f", {len(metrics['curve'])} epoch(s)"
    click.echo(line)
    if "labelled" in metrics:
        labelled = metrics["labelled"]
        click.echo(
            f"labelled target ({labelled['items']} items, measured only): accuracy {labelled['accuracy_before']:.1%} "
            f"before, {labelled['accuracy_after']:.1%} after"
        )
    click.echo(f"run folder: {out}")


@click.command("adapt")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder to write.")
@click.option("--method", type=click.Choice(METHODS), default="adabn", show_default=True)
@click.option(
    "--labelled",
    type=click.Path(exists=True, path_type=Path),
    help="Labelled target data (the run's classes), measured before and after; never trained on.",
)
@click.option("--epochs", type=int, help=f"tent, pseudo: passes over the target [{method_defaults('epochs')}].")
@click.option("--lr", type=float, help=f"tent, pseudo: Adam's learning rate [{method_defaults('lr')}].")
@click.option("--batch-size", default=32, show_default=True)
@click.option(
    "--threshold",
    type=float,
    help=f"pseudo: the least confidence that makes a prediction a label [{method_defaults('threshold')}].",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=1, show_default=True, help=THREADS_HELP)
@hardware_options
@click.pass_obj
def adapt_command(
    state: State, /, run: Path, target: Path, out: Path, method: str, labelled: Path | None, **options: Any
) -> None:
    """Adapt the trained RUN folder to TARGET, unlabelled data from where it will be used (an image folder,
    flat or with subfolders, or a text file), without labels: AdaBN, TENT or self-training on pseudo-labels.
    Only the layers the run trained change; a multi-task run is refused."""
    from zoo_core.training.adapt import adapt
    from zoo_core.training.adapt_options import AdaptOptions

    chosen = AdaptOptions(**options)
    metrics = adapt(run, target, out, method=method, options=chosen, labelled=labelled, catalogue=state.catalogue())
    _report(metrics, out)


COMMANDS = (adapt_command,)
