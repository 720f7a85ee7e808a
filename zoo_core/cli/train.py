"""`zoo finetune` and `zoo pretrain`: adapting a pretrained model, and developing a source model.

Options that cannot make a run (``--epochs 0``, ``--head logreg`` with ``--strategy full``) are refused
before any data is read; like everything else a run refuses, in one line and exit 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from zoo_core.cli import State
from zoo_core.training.options import PRECISIONS

if TYPE_CHECKING:
    from zoo_core.training.run import FinetuneOptions

__all__ = ["COMMANDS", "hardware_options", "report_run", "report_tasks"]

THREADS_HELP = "CPU threads while training; the same number gives the same result on any machine."


def hardware_options(command: Any) -> Any:
    """--device, --precision and --workers: where a run trains, at what precision, fed by how many processes."""
    for option in reversed(
        [
            click.option(
                "--device",
                default="auto",
                show_default=True,
                help="auto (CUDA when torch sees a GPU), cpu, cuda or cuda:N; under torchrun, each process's own GPU.",
            ),
            click.option(
                "--precision",
                type=click.Choice(PRECISIONS),
                default="fp32",
                show_default=True,
                help="Mixed precision by autocast; fp16 adds loss scaling and needs CUDA.",
            ),
            click.option(
                "--workers",
                default=0,
                show_default=True,
                help="Processes decoding images for the device (0: in the training process).",
            ),
        ]
    ):
        command = option(command)
    return command


def _figure(spread: dict[str, float], runs: int) -> str:
    return f"{spread['mean']:.1%}" + (f" ± {spread['std']:.1%}" if runs > 1 else "")


def report_run(metrics: dict[str, Any]) -> None:
    """What a run measured, each figure naming its split: the saved model's test figure, every baseline's
    on the same test split, and whether transfer beats them."""
    runs, sizes = len(metrics["seeds"]), metrics["sizes"]
    seeds = f"mean ± std over {runs} seeds" if runs > 1 else f"seed {metrics['seeds'][0]}"
    click.echo(
        f"splits: {sizes['train']} train, {sizes['val']} validation (picks the epoch), {sizes['test']} test "
        f"(reported once); {seeds}; chance {metrics['chance']:.1%}"
    )
    methods = {f"transfer ({metrics['strategy']})": metrics["transfer"], **metrics["baselines"]}
    for name, method in methods.items():
        test, line = method["test"], f"{name}: test accuracy {_figure(method['test']['accuracy'], runs)}"
        line += f", balanced {_figure(test['balanced_accuracy'], runs)}, macro-F1 {_figure(test['macro_f1'], runs)}"
        if "start" in method:
            line += (
                f" (validation: start {_figure(method['start'], runs)}, asymptote {_figure(method['asymptote'], runs)})"
            )
        click.echo(line)
    if runs > 1:  # the saved model is one of the seeds: its own figure, which `zoo evaluate RUN` gives again
        click.echo(f"saved model (seed {metrics['seeds'][0]}): test accuracy {metrics['test']['accuracy']:.1%}")
    for line in metrics["verdict"]:
        click.echo(line)


def report_tasks(metrics: dict[str, Any]) -> None:
    """What a multi-task run measured: each task's test figures on its own test split, and the joint
    training's cost."""
    runs = len(metrics["seeds"])
    seeds = f"mean ± std over {runs} seeds" if runs > 1 else f"seed {metrics['seeds'][0]}"
    joint = metrics["joint"]["runs"]
    steps, seconds = sum(run["steps"] for run in joint) / runs, sum(run["seconds"] for run in joint) / runs
    click.echo(
        f"{len(metrics['tasks'])} tasks on one backbone ({metrics['strategy']}); {seeds}; "
        f"{steps:.0f} training steps and {seconds:.1f} s a seed"
    )
    for name, task in metrics["tasks"].items():
        sizes, test = task["sizes"], task["transfer"]["test"]
        click.echo(
            f"task {name} (weight {task['weight']:g}; {sizes['train']} train, {sizes['val']} validation, "
            f"{sizes['test']} test; chance {task['chance']:.1%}): test accuracy {_figure(test['accuracy'], runs)}, "
            f"balanced {_figure(test['balanced_accuracy'], runs)}, macro-F1 {_figure(test['macro_f1'], runs)}"
        )


def _report(metrics: dict[str, Any], out: Path) -> None:
    if "tasks" in metrics:
        report_tasks(metrics)
    elif "source" in metrics:
        source = metrics["source"]
        click.echo(
            f"{metrics['model']}: test accuracy {source['test_accuracy']:.1%} on {metrics['sizes']['test']} "
            f"held-out source images (validation: start {source['start']:.1%}, asymptote {source['asymptote']:.1%})"
        )
    else:
        report_run(metrics)
    click.echo(f"run folder: {out}")


def _options(**chosen: Any) -> FinetuneOptions:
    """The run's options; values no run can use are a one-line `RunOptionError` naming the option (exit 1)."""
    from zoo_core.training.run import FinetuneOptions

    return FinetuneOptions(**chosen)


def _chosen(options: dict[str, Any]) -> FinetuneOptions:
    """`zoo finetune`'s options, --val and --test as text (a manifest records them so)."""
    paths = {key: str(options[key]) if options[key] else None for key in ("val", "test")}
    return _options(**{**options, **paths})


def _refuse_beside_manifest(ctx: click.Context, placement: tuple[str, ...]) -> dict[str, Any]:
    """A manifest holds the model, the data and every option: nothing given beside it would be used, but
    the `placement` options (--device, --workers: where the run trains, not what it computes), which are
    returned to replace the manifest's."""
    given = [
        key.upper() if key in ("name", "data") else f"--{key.replace('_', '-')}"
        for key in ctx.params
        if ctx.get_parameter_source(key) is ParameterSource.COMMANDLINE
        and key not in ("out", "from_manifest", "resume", *placement)
    ]
    if given:
        raise click.UsageError(
            f"--from-manifest takes the model, data and options from the manifest; drop {', '.join(given)}"
            + (f" (only {', '.join(f'--{key}' for key in placement)} may change)" if placement else "")
        )
    chosen = [key for key in placement if ctx.get_parameter_source(key) is ParameterSource.COMMANDLINE]
    return {key: ctx.params[key] for key in chosen}


@click.command("finetune")
@click.argument("name", required=False)
@click.argument("data", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder to write.")
@click.option("--strategy", type=click.Choice(["features", "finetune", "full"]), default="features", show_default=True)
@click.option("--head", type=click.Choice(["linear", "mlp", "logreg"]), default="linear", show_default=True)
@click.option("--unfreeze", default=1, show_default=True, help="finetune: backbone stages trained under the head.")
@click.option("--drop-last", default=0, show_default=True, help="Reuse all backbone stages but the last N.")
@click.option("--epochs", default=10, show_default=True)
@click.option("--patience", default=3, show_default=True, help="Stop after N epochs without a better validation loss.")
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--val-split", default=0.2, show_default=True, help="Stratified share held out for validation.")
@click.option("--val", type=click.Path(exists=True, path_type=Path), help="A separate validation set instead.")
@click.option("--test-split", default=0.2, show_default=True, help="Stratified share held out for the test.")
@click.option("--test", type=click.Path(exists=True, path_type=Path), help="A separate test set instead.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=1, show_default=True, help=THREADS_HELP)
@click.option(
    "--baseline",
    type=click.Choice(["scratch", "pixels", "knn"]),
    multiple=True,
    help="Also train a baseline on the same splits (repeatable): scratch, pixels (or bag of words), knn.",
)
@click.option("--repeats", default=1, show_default=True, help="Seeds to run (seed, seed+1, ...): mean ± std.")
@click.option(
    "--task",
    multiple=True,
    metavar="NAME=DATA",
    help="Multi-task (repeatable, two or more, instead of DATA): one head per task on one backbone.",
)
@click.option(
    "--task-weight",
    multiple=True,
    metavar="NAME=W",
    help="A task's loss weight (default 1): the loss is the weighted sum of the tasks' cross-entropies.",
)
@hardware_options
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option(
    "--from-manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Reproduce the run a manifest.json describes.",
)
@click.pass_context
def finetune_command(
    ctx: click.Context,
    /,
    name: str | None,
    data: Path | None,
    out: Path,
    from_manifest: Path | None,
    resume: bool,
    **options: Any,
) -> None:
    """Adapt a pretrained model to a labelled dataset (an image folder, or a CSV/JSONL with text and label)."""
    from zoo_core.training.run import finetune, finetune_from_manifest

    state: State = ctx.obj
    tasks, task_weights = options.pop("task"), options.pop("task_weight")
    if from_manifest is not None:
        from zoo_core.training.multitask import finetune_tasks_from_manifest
        from zoo_core.training.run import PLACEMENT
        from zoo_core.training.tasks import is_multitask_manifest

        placement = _refuse_beside_manifest(ctx, PLACEMENT)
        replay = finetune_tasks_from_manifest if is_multitask_manifest(from_manifest) else finetune_from_manifest
        metrics = replay(from_manifest, out, state.catalogue(), resume=resume, placement=placement)
    elif tasks or task_weights:
        metrics = _finetune_tasks(state, name, data, out, tasks, task_weights, resume, options)
    elif name is None or data is None:
        raise click.UsageError("give NAME and DATA, or --from-manifest RUN_DIR/manifest.json")
    else:
        metrics = finetune(state.catalogue().get(name), data, out, _chosen(options), resume=resume)
    _report(metrics, out)


def _finetune_tasks(
    state: State,
    name: str | None,
    data: Path | None,
    out: Path,
    tasks: tuple[str, ...],
    task_weights: tuple[str, ...],
    resume: bool,
    options: dict[str, Any],
) -> dict[str, Any]:
    """`zoo finetune NAME --task A=DATA_A --task B=DATA_B`: the task options checked, one line each."""
    from zoo_core.errors import RunOptionError
    from zoo_core.training.multitask import finetune_tasks
    from zoo_core.training.tasks import parse_tasks, parse_weights

    if not tasks:
        raise RunOptionError("--task-weight weighs a --task: give two or more --task NAME=DATA, or drop it")
    if data is not None:
        raise RunOptionError(
            f"DATA {data} and --task both give the data: with --task, each task names its own (--task NAME=DATA)"
        )
    if name is None:
        raise click.UsageError(
            "give NAME, the model the tasks share: zoo finetune NAME --task A=DATA_A --task B=DATA_B"
        )
    named = parse_tasks(tasks)
    weights = parse_weights(task_weights, named)
    return finetune_tasks(state.catalogue().get(name), named, out, _chosen(options), weights, resume=resume)


@click.command("pretrain")
@click.argument("arch")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="The catalogue name the source model gets: a name no model has.")
@click.option("--replace", is_flag=True, help="Replace the entry of that name in your own registry.")
@click.option("--size", default=32, show_default=True, help="Input height and width.")
@click.option("--channels", default=3, show_default=True, help="1 for grayscale data.")
@click.option("--epochs", default=15, show_default=True)
@click.option("--lr", default=3e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=1, show_default=True, help=THREADS_HELP)
@hardware_options
@click.pass_obj
def pretrain_command(
    state: State,
    /,
    arch: str,
    data: Path,
    out: Path,
    name: str,
    replace: bool,
    size: int,
    channels: int,
    **options: Any,
) -> None:
    """Train a timm ARCH from scratch on abundant source DATA and register it, for `zoo finetune NAME`."""
    from zoo_core.training.pretrain import pretrain

    chosen = _options(**options)
    metrics = pretrain(
        arch,
        data,
        out,
        name,
        size=size,
        channels=channels,
        options=chosen,
        replace=replace,
        catalogue=state.catalogue(),
    )
    _report(metrics, out)


COMMANDS = (finetune_command, pretrain_command)
